"""The Flask-AppBuilder admin UI (`fab_ui`) as an ASGI app for the `/` mount.

`fab_ui` is imported only here, when the app is built: the GraphQL side does not depend on it, and
while it is not there yet the mount shows a page saying so instead of failing the whole service.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp

from headless_bi.runtime import Runtime

log = logging.getLogger(__name__)

_PLACEHOLDER = """<!doctype html>
<html><head><meta charset="utf-8"><title>headless-bi</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>headless-bi</h1>
<p>The admin UI (<code>fab_ui</code>) is not installed in this build yet.</p>
<p>The GraphQL API is at <a href="/graphql">/graphql</a> (GraphiQL in the browser);
service health at <a href="/healthz">/healthz</a>.</p>
</body></html>
"""


def admin_app(runtime: Runtime) -> ASGIApp:
    """`fab_ui.app.create_app(settings)` through a2wsgi (its own thread pool), or the placeholder."""
    try:
        from fab_ui.app import create_app
    except ModuleNotFoundError as exc:
        if exc.name not in ("fab_ui", "fab_ui.app"):
            raise
        log.warning("fab_ui not found: / shows a placeholder page")
        return _placeholder
    from a2wsgi import WSGIMiddleware

    options: dict[str, Any] = {}
    if "model_provider" in inspect.signature(create_app).parameters:
        options["model_provider"] = lambda: runtime.model  # the catalog follows reloads
    return WSGIMiddleware(create_app(runtime.settings, **options))  # type: ignore[arg-type]


async def _placeholder(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    request = Request(scope, receive)
    status = 200 if request.url.path == "/" else 404
    await HTMLResponse(_PLACEHOLDER, status_code=status)(scope, receive, send)
