"""Assemble the ASGI app: routes, the GraphQL view, the admin UI mount and the process lifecycle.

Start-up sizes the event loop's default executor to `settings.query_threads` (every
`asyncio.to_thread`, hence every warehouse query, runs there) and starts the model watcher when
`settings.watch_models` is on; shutdown stops live queries and closes the warehouse.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from headless_bi.runtime import Runtime, Settings
from headless_bi.server.auth import login, login_limiter
from headless_bi.server.graphiql import ASSETS as GRAPHIQL_ASSETS
from headless_bi.server.graphql_view import GraphQLView
from headless_bi.server.health import Health
from headless_bi.server.limits import BodyLimit
from headless_bi.server.responses import error_response
from headless_bi.server.schemas import ContextFactory, CurrentSchema, SchemaFactory, default_factories
from headless_bi.server.ui import admin_app
from headless_bi.server.watch import watch_models


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    schema_factory: SchemaFactory | None = None,
    context_factory: ContextFactory | None = None,
) -> Starlette:
    """The service for `settings` (default: `Settings.from_env()`), or around an existing `runtime`.

    A runtime passed in stays the caller's to close; one created here is closed at shutdown.
    """
    owns_runtime = runtime is None
    if runtime is None:
        runtime = Runtime.start(settings or Settings.from_env())
    settings = runtime.settings
    default_schema, default_context = default_factories()
    schemas = CurrentSchema(runtime, schema_factory or default_schema)
    view = GraphQLView(runtime, schemas, context_factory or default_context)
    graphql = BodyLimit(view, settings.max_body_bytes)
    health = Health(runtime, schemas)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(settings.query_threads, thread_name_prefix="hbi-query")
        loop.set_default_executor(executor)
        watcher = asyncio.create_task(watch_models(runtime)) if settings.watch_models else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            await runtime.live.aclose()
            health.close()
            app.state.login_limiter.close()
            if owns_runtime:
                runtime.close()

    app = Starlette(
        routes=[
            Route("/healthz", health.endpoint, methods=["GET", "HEAD"]),
            Route("/favicon.ico", _no_icon, methods=["GET", "HEAD"]),
            Route("/auth/token", login, methods=["POST"]),
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Mount("/graphql/assets", app=StaticFiles(directory=GRAPHIQL_ASSETS)),
            Mount("/", app=admin_app(runtime)),
        ],
        exception_handlers={Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.schemas = schemas
    app.state.login_limiter = login_limiter(settings)
    return app


async def _internal_error(request: Request, exc: Exception) -> Response:
    """Unexpected errors get a JSON body without the traceback; Starlette re-raises after answering,
    so uvicorn still logs the traceback."""
    return error_response(500, "Internal server error.")


async def _no_icon(request: Request) -> Response:
    """Browsers ask for an icon on every page; an empty answer keeps 404s out of their consoles."""
    return Response(status_code=204)
