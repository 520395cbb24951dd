"""Run the service on uvicorn (`headless-bi serve`) and print where it answers once it listens."""

from __future__ import annotations

import copy
import logging.config
import sys
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from headless_bi.runtime import Settings
from headless_bi.server.app import create_app


class _Server(uvicorn.Server):
    """uvicorn's server, printing the URLs after the socket is bound (the real port when asked for 0)."""

    settings: Settings

    async def startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        await super().startup(sockets)
        if not self.started:
            return
        host, port = self.settings.host, self.settings.port
        for server in self.servers:
            for sock in server.sockets:
                port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{shown}:{port}"
        print(
            f"headless-bi: models {self.settings.models}, warehouse {self.settings.warehouse}\n"
            f"  GraphQL  {base}/graphql  (GraphiQL in a browser)\n"
            f"  admin UI {base}/\n"
            f"  health   {base}/healthz",
            flush=True,
        )


def log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's logging setup, extended to our own loggers (reloads, live queries, schema swaps)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    for name in ("headless_bi", "fab_ui"):
        config["loggers"][name] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def serve(settings: Settings, *, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM)."""
    logging.config.dictConfig(log_config(log_level))
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        lifespan="on",
        log_config=log_config(log_level),
        ws_max_size=settings.max_body_bytes,  # the body limit holds for WebSocket messages too
        timeout_graceful_shutdown=10,  # open subscriptions must not hold a restart forever
    )
    server = _Server(config)
    server.settings = settings
    server.run()
    if not server.started:
        sys.exit(1)  # e.g. the port is taken; uvicorn logged why
