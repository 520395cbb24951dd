"""The per-request context the resolvers read; the server builds it with `make_context`.

A plain dict so the server, tests and later the security layer can add keys without a type change.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from headless_bi.runtime import Runtime


def make_context(runtime: Runtime, request: Any = None, **extra: Any) -> dict[str, Any]:
    """`runtime`, `request`, `security` (None until security lands), `can_see_sql`, `is_admin`.

    Until roles exist everyone may see SQL and reload models; pass `can_see_sql=False` /
    `is_admin=False` (or anything else) in `extra` to override.
    """
    context: dict[str, Any] = {
        "runtime": runtime,
        "request": request,
        "security": None,
        "can_see_sql": True,
        "is_admin": True,
    }
    context.update(extra)
    return context


def context_key(context: dict[str, Any]) -> str:
    """A stable string naming the security context, so live queries are shared only within one.

    "anonymous" without a security context; otherwise a digest of it (the same claims give the same
    key in every process, which Redis fan-out needs).
    """
    security = context.get("security")
    if security is None:
        return "anonymous"
    text = json.dumps(security, sort_keys=True, default=str)
    return "sec:" + hashlib.sha256(text.encode()).hexdigest()[:32]
