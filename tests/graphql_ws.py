"""A graphql-transport-ws client for the tests: connect, authenticate in connection_init, run
operations, answer the server's pings."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets


class GraphQLSocket:
    def __init__(self, connection: websockets.ClientConnection):
        self.connection = connection
        self.next_id = 0

    @classmethod
    async def open(cls, url: str, payload: dict[str, str], **options: Any) -> GraphQLSocket:
        """Connected and acknowledged; `payload` carries the credentials (e.g. Authorization)."""
        connection = await websockets.connect(
            url, subprotocols=["graphql-transport-ws"], open_timeout=10, **options
        )
        socket = cls(connection)
        await socket.send({"type": "connection_init", "payload": payload})
        assert await socket.receive() == {"type": "connection_ack"}
        return socket

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, timeout: float = 20.0) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
            if message["type"] != "ping":
                return message  # type: ignore[no-any-return]
            await self.send({"type": "pong"})

    async def operation(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one operation and return its first `next` payload, or the `error` payload."""
        self.next_id += 1
        op_id = str(self.next_id)
        await self.send({"id": op_id, "type": "subscribe",
                         "payload": {"query": query, "variables": variables or {}}})  # fmt: skip
        message = await self.receive()
        if message["type"] == "error":
            return {"errors": message["payload"]}
        assert message["type"] == "next" and message["id"] == op_id, message
        assert await self.receive() == {"id": op_id, "type": "complete"}
        return message["payload"]  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.connection.close()
