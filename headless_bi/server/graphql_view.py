"""strawberry's ASGI GraphQL app, adapted: per-operation schema lookup, JSON errors, our context.

- `schema` is read from `CurrentSchema` on every use, so a reload needs no new app and drops no
  connection; the WebSocket handlers look it up per operation too.
- GraphiQL loads its scripts from this server (`graphiql.py`), not a CDN.
- HTTP errors strawberry answers as plain text (bad JSON, unsupported content type, wrong method)
  become JSON error bodies; a JSON body that is not an object or a list is refused with 400 instead
  of failing inside strawberry.
"""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.schema import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from headless_bi.runtime import Runtime
from headless_bi.server.graphiql import local_html
from headless_bi.server.responses import error_response
from headless_bi.server.schemas import ContextFactory, CurrentSchema

_JSON_TYPES = ("application/json",)


class _CurrentSchemaMixin:
    """Reads the schema from the view at each operation instead of keeping the one from connect time."""

    view: Any

    @property
    def schema(self) -> BaseSchema:
        return self.view.schema

    @schema.setter
    def schema(self, value: BaseSchema) -> None:  # the base __init__ assigns it; the view owns it
        pass


class _TransportWSHandler(_CurrentSchemaMixin, BaseGraphQLTransportWSHandler):
    pass


class _LegacyWSHandler(_CurrentSchemaMixin, BaseGraphQLWSHandler):
    pass


class GraphQLView(GraphQL):
    graphql_transport_ws_handler_class = _TransportWSHandler
    graphql_ws_handler_class = _LegacyWSHandler

    def __init__(self, runtime: Runtime, schemas: CurrentSchema, make_context: ContextFactory):
        self._schemas = schemas
        self._runtime = runtime
        self._make_context = make_context
        super().__init__(schemas.schema, graphql_ide="graphiql")
        self._ide_html = local_html(self.graphql_ide_html)

    @property
    def schema(self) -> BaseSchema:
        return self._schemas.schema

    @schema.setter
    def schema(self, value: BaseSchema) -> None:
        self._schemas.schema = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive=receive)
        refusal = _refuse_content_type(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        try:
            response = await self.run(request)
        except HTTPException as exc:
            response = error_response(exc.status_code, exc.reason)
        await response(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._ide_html)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Any:
        return self._make_context(self._runtime, request=request, response=response)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            parsed = super().parse_json(data)
        except UnicodeDecodeError:
            raise HTTPException(400, "The request body is not UTF-8 text.") from None
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object (or a list of them).")
        return parsed


def _refuse_content_type(request: Request) -> Response | None:
    """415 for a POST whose body is not JSON (strawberry would answer a plain-text 400)."""
    if request.method != "POST":
        return None
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in _JSON_TYPES:
        return None
    shown = media_type or "none"
    return error_response(
        415, f"Unsupported content type '{shown}': send the GraphQL request as application/json."
    )
