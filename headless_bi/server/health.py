"""GET /healthz: is the service up, which model version serves, can the warehouse answer.

The warehouse check runs on its own thread (not the query pool), so it answers even while every
query thread is busy, and concurrent probes share one check in flight.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from headless_bi.errors import HeadlessBIError
from headless_bi.runtime import Runtime
from headless_bi.server.schemas import CurrentSchema


class Health:
    def __init__(self, runtime: Runtime, schemas: CurrentSchema, timeout_s: float = 2.0):
        self._runtime = runtime
        self._schemas = schemas
        self._timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="hbi-health")
        self._check: asyncio.Future[str | None] | None = None

    async def endpoint(self, request: Request) -> JSONResponse:
        error = await self._warehouse_error()
        body: dict[str, Any] = {
            "status": "ok" if error is None else "degraded",
            "model_version": self._runtime.model.version,
            "schema_version": self._schemas.version,
            "warehouse_reachable": error is None,
            "live": self._runtime.live.stats(),
        }
        if error is not None:
            body["warehouse_error"] = error
        return JSONResponse(body, status_code=200 if error is None else 503)

    async def _warehouse_error(self) -> str | None:
        if self._check is None or self._check.done():
            loop = asyncio.get_running_loop()
            self._check = loop.run_in_executor(self._executor, self._probe)
        try:
            return await asyncio.wait_for(asyncio.shield(self._check), self._timeout_s + 1)
        except TimeoutError:
            return f"no answer within {self._timeout_s:g} s"

    def _probe(self) -> str | None:
        try:
            warehouse = self._runtime.warehouse
            ping = getattr(warehouse, "ping", None)
            if ping is not None:
                ping(self._timeout_s)
            else:
                warehouse.execute("SELECT 1 AS ok", timeout_s=self._timeout_s)
        except HeadlessBIError as exc:
            return exc.message
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
