"""Every GraphQL error leaves with a stable `extensions.code` and a message safe to show.

- A HeadlessBIError (anywhere) → its code and message (they name the member and value).
- A request error from graphql-core (syntax, unknown field, bad variable) → BAD_QUERY, its message;
  a limit rule's own code (LIMIT_EXCEEDED) is kept, and the depth limiter's error gets it too.
- Anything else (a bug, a driver failure that escaped) → INTERNAL with a generic message; the
  original is logged with its traceback here, never sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from headless_bi.errors import BAD_QUERY, INTERNAL, LIMIT_EXCEEDED, HeadlessBIError

log = logging.getLogger("headless_bi.graphql")

INTERNAL_MESSAGE = "Internal error; the server log has the details."
_DEPTH_MESSAGE = "exceeds maximum operation depth"


def classify(error: GraphQLError) -> tuple[str, str]:
    """(code, message) to send for `error`."""
    original = error.original_error
    if isinstance(original, HeadlessBIError):
        return original.code, original.message
    code = (error.extensions or {}).get("code")
    if original is None or isinstance(original, GraphQLError):
        if error.path is not None and original is not None:
            return INTERNAL, INTERNAL_MESSAGE  # e.g. a value the field's type cannot serialize
        if code:
            return str(code), error.message
        return (LIMIT_EXCEEDED if _DEPTH_MESSAGE in error.message else BAD_QUERY), error.message
    return INTERNAL, INTERNAL_MESSAGE


def log_errors(errors: list[GraphQLError]) -> None:
    """Unexpected errors at ERROR with traceback; the user's own mistakes at DEBUG."""
    for error in errors:
        code, _ = classify(error)
        if code == INTERNAL:
            original = error.original_error or error
            log.error(
                "GraphQL %s failed: %s",
                ".".join(map(str, error.path or [])) or "request",
                original,
                exc_info=(type(original), original, original.__traceback__),
            )
        else:
            log.debug("GraphQL error %s: %s", code, error.message)


def sanitize(error: GraphQLError) -> GraphQLError:
    code, message = classify(error)
    extensions = {**(error.extensions or {}), "code": code}
    original = error.original_error
    if isinstance(original, HeadlessBIError):
        for key in ("member", "value"):
            value = getattr(original, key, None)
            if isinstance(value, str | int | float | bool):
                extensions[key] = value
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class ErrorCodes(SchemaExtension):
    """Rewrites the errors of every result (queries, mutations and each subscription event)."""

    def __init__(self) -> None:
        self._streamed = False

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        if not self._streamed:
            _rewrite(self.execution_context.result)

    def on_stream_result(self, result: object) -> Iterator[None]:
        self._streamed = True
        _rewrite(result)
        yield None


def _rewrite(result: object) -> None:
    errors = getattr(result, "errors", None)
    if errors:
        result.errors = [sanitize(e) for e in errors]  # type: ignore[attr-defined]
