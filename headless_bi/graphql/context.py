"""The per-request context the resolvers read; the server builds it with `make_context`.

A plain dict so the server, tests and extensions can add keys without a type change.
"""

from __future__ import annotations

from typing import Any

from headless_bi.runtime import Runtime
from headless_bi.security.context import SecurityContext
from headless_bi.security.govern import govern
from headless_bi.semantic.model import SemanticModel


def make_context(
    runtime: Runtime, request: Any = None, *, security: SecurityContext | None = None, **extra: Any
) -> dict[str, Any]:
    """`runtime`, `request`, `security`, `can_see_sql`, `is_admin`.

    With a security context, compiled SQL and `reloadModels` are for the Admin role; without one
    (tests, in-process callers) the caller is the operator and may do everything.
    """
    admin = security is None or security.is_admin
    context: dict[str, Any] = {
        "runtime": runtime,
        "request": request,
        "security": security,
        "can_see_sql": admin,
        "is_admin": admin,
    }
    context.update(extra)
    return context


def visible_model(context: dict[str, Any]) -> SemanticModel:
    """The running model as the caller may see it (hidden members left out)."""
    model = context["runtime"].model
    security = context.get("security")
    return model if security is None else govern(model, security).model
