"""The service as one ASGI app: GraphQL at /graphql, health at /healthz, the admin UI at /.

`create_app` assembles it (tests and other ASGI servers use it directly); `serve` runs it on uvicorn
for `headless-bi serve`. Both are imported on first use, so the submodules stay cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headless_bi.server.app import create_app
    from headless_bi.server.run import serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from headless_bi.server.app import create_app

        return create_app
    if name == "serve":
        from headless_bi.server.run import serve

        return serve
    raise AttributeError(name)
