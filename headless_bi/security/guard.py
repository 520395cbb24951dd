"""What every governed query passes through besides its policies: the rate limit and the audit log.

The runtime calls `admit` before a caller's query and `record` after it, so no entry point (GraphQL,
live, ask, exports) can skip either. Both are built on first use: a process that only ever runs the
operator's own queries (the CLI) opens no metadata DB and starts no writer thread.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from headless_bi.security.audit import AuditEvent, AuditLog
from headless_bi.security.context import SecurityContext
from headless_bi.security.rate_limit import RateLimiter, rate_limiter

if TYPE_CHECKING:
    from headless_bi.runtime import Settings


class QueryGuard:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._limiter: RateLimiter | None = None
        self._audit: AuditLog | None = None

    @property
    def limiter(self) -> RateLimiter:
        with self._lock:
            if self._limiter is None:
                self._limiter = rate_limiter(self._settings)
            return self._limiter

    @property
    def audit(self) -> AuditLog | None:
        if not self._settings.audit:
            return None
        with self._lock:
            if self._audit is None:
                self._audit = AuditLog(self._settings.metadata_url)
            return self._audit

    def admit(self, security: SecurityContext) -> None:
        """Raise `RateLimitedError` when the caller is over the per-minute limit."""
        self.limiter.check(security.user)

    def record(
        self,
        security: SecurityContext,
        path: str,
        query: Any,
        *,
        sql: str | None = None,
        rows: int | None = None,
        duration_ms: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        audit = self.audit
        if audit is not None:
            audit.record(
                AuditEvent.create(
                    security, path, query=query, sql=sql, rows=rows, duration_ms=duration_ms, error=error
                )
            )

    def close(self) -> None:
        with self._lock:
            if self._audit is not None:
                self._audit.close()
            if self._limiter is not None:
                self._limiter.close()
            self._audit = self._limiter = None
