"""Errors that reach users: each carries a stable code and names what was wrong and where.

Codes are part of the public contract (GraphQL `extensions.code`, CLI exit messages), so they are
plain strings kept in one place.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

BAD_QUERY = "BAD_QUERY"
UNKNOWN_MEMBER = "UNKNOWN_MEMBER"
FORBIDDEN = "FORBIDDEN"
TIMEOUT = "TIMEOUT"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
UNAUTHENTICATED = "UNAUTHENTICATED"
RATE_LIMITED = "RATE_LIMITED"
INTERNAL = "INTERNAL"


class HeadlessBIError(Exception):
    """Base class: an error whose message is safe and useful to show to the user."""

    code = INTERNAL

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class QueryError(HeadlessBIError):
    """A query that cannot be compiled as asked: names the member and the value at fault."""

    code = BAD_QUERY

    def __init__(
        self, message: str, *, member: str | None = None, value: object = None, code: str | None = None
    ):
        super().__init__(message)
        self.member = member
        self.value = value
        if code:
            self.code = code


class UnknownMemberError(QueryError):
    code = UNKNOWN_MEMBER

    def __init__(
        self, member: str, candidates: Iterable[str], *, kind: str = "member", where: str | None = None
    ):
        hint = did_you_mean(member, candidates)
        place = f" in {where}" if where else ""
        super().__init__(f"Unknown {kind} '{member}'{place}.{hint}", member=member)


class QueryTimeoutError(HeadlessBIError):
    code = TIMEOUT


class LimitExceededError(HeadlessBIError):
    code = LIMIT_EXCEEDED


class ForbiddenError(HeadlessBIError):
    code = FORBIDDEN


class AuthenticationError(HeadlessBIError):
    """Missing, expired, tampered or revoked credentials: the message says which, never why not."""

    code = UNAUTHENTICATED


class RateLimitedError(HeadlessBIError):
    code = RATE_LIMITED

    def __init__(self, message: str, *, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ModelIssue:
    """One problem in a model file, located by file, line and member."""

    file: str
    line: int | None
    member: str | None
    message: str
    severity: str = "error"  # or "warning": reported by `validate`, does not stop loading

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f" {self.member}:" if self.member else ""
        tag = " warning:" if self.severity == "warning" else ""
        return f"{where}:{tag}{what} {self.message}"


class ModelError(HeadlessBIError):
    """The models do not load; carries every issue found, not just the first."""

    code = BAD_QUERY

    def __init__(self, issues: list[ModelIssue]):
        self.issues = issues
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"{len(issues)} problem(s) in the semantic models:\n{lines}")


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean …?' suffix with the closest candidates, or '' when none is close."""
    pool = list(candidates)
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)]
    if not close:
        return ""
    return " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
