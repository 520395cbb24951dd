"""The audit log: who ran which query, on which path, how it ended, in table `hbi_audit_log`.

Events are queued by `AuditLog.record` and written in batches by one background thread, so a slow or
unreachable metadata DB never slows down or fails a query. The compiled SQL is stored only as its
SHA-256 (it can embed row-level policy values); the semantic query is stored as JSON text.

The table is declared on Flask-AppBuilder's declarative `Model`, so the UI's `create_all` creates it
and its admin view can list it; `AuditLog` also creates it when missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask_appbuilder.models.sqla import Model
from sqlalchemy import DateTime, Engine, Float, Index, Integer, String, Text, insert
from sqlalchemy.orm import Mapped, mapped_column

from headless_bi.errors import INTERNAL
from headless_bi.security.context import SecurityContext
from headless_bi.security.metadata import metadata_engine

log = logging.getLogger(__name__)

TABLE = "hbi_audit_log"
OK = "ok"
ERROR_MAX_CHARS = 2000
QUERY_MAX_CHARS = 100_000

# Widths of the short columns; longer values are cut rather than failing the whole batch.
_WIDTHS = {"user": 255, "auth": 32, "path": 32, "outcome": 32, "sql_hash": 64}


class AuditRecord(Model):
    """One row of the audit log (the ORM class the admin view lists)."""

    __tablename__ = TABLE
    __table_args__ = (
        Index("ix_hbi_audit_log_at", "at"),
        Index("ix_hbi_audit_log_user_at", "user", "at"),
        {"extend_existing": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    user: Mapped[str] = mapped_column(String(_WIDTHS["user"]), nullable=False)
    roles: Mapped[str] = mapped_column(Text, nullable=False, default="")  # sorted, comma-separated
    auth: Mapped[str] = mapped_column(String(_WIDTHS["auth"]), nullable=False, default="")
    path: Mapped[str] = mapped_column(String(_WIDTHS["path"]), nullable=False)
    query: Mapped[str | None] = mapped_column(Text)
    sql_hash: Mapped[str | None] = mapped_column(String(_WIDTHS["sql_hash"]))
    rows: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(_WIDTHS["outcome"]), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:  # the admin view's title for a row
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.user} {self.path} {self.outcome}"


def sql_hash(sql: str) -> str:
    """SHA-256 hex of the compiled SQL: identifies the statement without storing policy values."""
    return hashlib.sha256(sql.encode()).hexdigest()


def query_json(query: Any) -> str | None:
    """The semantic query as compact, key-sorted JSON text (non-JSON values via `str`)."""
    if query is None:
        return None
    if isinstance(query, str):
        return query
    return json.dumps(query, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class AuditEvent:
    """One query as the audit log stores it: `outcome` is "ok" or the error code (FORBIDDEN, …)."""

    user: str
    path: str  # graphql, load, live, cube, ask, cli, export, …
    outcome: str = OK
    roles: tuple[str, ...] = ()
    auth: str = ""  # how the user authenticated: jwt, api_key, session, anonymous, local
    query: str | None = None  # JSON text of the semantic query
    sql_hash: str | None = None  # sha256 hex of the compiled SQL, never the SQL
    rows: int | None = None
    duration_ms: float | None = None
    error: str | None = None  # the error message, truncated to ERROR_MAX_CHARS
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def create(
        cls,
        context: SecurityContext,
        path: str,
        *,
        query: Any = None,
        sql: str | None = None,
        rows: int | None = None,
        duration_ms: float | None = None,
        error: BaseException | None = None,
    ) -> AuditEvent:
        """An event from what the query path has at hand: the SQL is hashed, the error turned into
        its code (`INTERNAL` for errors that carry none) and its message truncated."""
        message = None if error is None else str(getattr(error, "message", None) or error)
        return cls(
            user=context.user, path=path, roles=tuple(sorted(context.roles)), auth=context.auth,
            query=query_json(query), sql_hash=sql_hash(sql) if sql is not None else None,
            rows=rows, duration_ms=duration_ms,
            outcome=OK if error is None else str(getattr(error, "code", INTERNAL)),
            error=_cut(message, ERROR_MAX_CHARS),
        )

    def row(self) -> dict[str, Any]:
        """The table row: roles joined, over-long values cut so one event cannot fail a batch."""
        values: dict[str, Any] = {
            "at": _utc(self.at), "user": self.user, "roles": ",".join(sorted(self.roles)), "auth": self.auth,
            "path": self.path, "query": _cut(self.query, QUERY_MAX_CHARS), "sql_hash": self.sql_hash,
            "rows": self.rows, "duration_ms": self.duration_ms, "outcome": self.outcome,
            "error": _cut(self.error, ERROR_MAX_CHARS),
        }
        for name, width in _WIDTHS.items():
            values[name] = _cut(values[name], width)
        return values


def _utc(at: datetime) -> datetime:
    """In UTC, as SQLite stores the wall time and drops the zone; a naive time is taken as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _cut(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def create_table(engine: Engine) -> None:
    """Create `hbi_audit_log` and its indexes if missing (two processes racing is harmless)."""
    AuditRecord.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]


class AuditLog:
    """Writes `AuditEvent`s to the metadata DB from one background thread, in batches.

    `record` only appends to an in-memory queue and returns; the writer flushes every
    `flush_interval_s` (0.5 s) or as soon as `batch_size` (200) events wait. The queue is bounded
    (`max_queue`, 10,000 events): past that the oldest waiting events are dropped with a logged
    warning, so a DB that is down cannot exhaust memory. A failed write is logged, never raised, and
    retried on the next flushes (the table is re-created if it went missing); after `attempts` failures
    the batch is dropped with a logged error, so one bad row cannot wedge the writer. Call `close()`
    at shutdown: events still queued when the process exits without it are lost.
    """

    def __init__(
        self,
        metadata_url: str,
        *,
        flush_interval_s: float = 0.5,
        batch_size: int = 200,
        max_queue: int = 10_000,
        attempts: int = 3,
    ) -> None:
        self.engine = metadata_engine(metadata_url)
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.attempts = attempts
        self.dropped = 0  # events lost to the queue bound or to failed writes
        self._queue: deque[tuple[int, AuditEvent]] = deque()
        self._cond = threading.Condition()
        self._recorded = 0  # sequence number of the last event queued
        self._done = 0  # every event up to this one is written or dropped
        self._retry: list[tuple[int, AuditEvent]] = []  # the batch that failed, tried again first
        self._failures = 0
        self._table_ready = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="hbi-audit-writer", daemon=True)
        self._thread.start()

    def record(self, event: AuditEvent) -> None:
        """Queue `event`; never blocks on the DB and never raises."""
        with self._cond:
            if self._closed:
                log.warning("Audit log is closed; dropped an event for %s", event.user)
                return
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("Audit queue full (%d events): dropped the oldest, %d so far",
                                self.max_queue, self.dropped)
            self._recorded += 1
            self._queue.append((self._recorded, event))
            if len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every event recorded so far is written (or given up on); False on timeout."""
        with self._cond:
            target = self._recorded
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target or not self._thread.is_alive(), timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued and stop the writer thread."""
        self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._closed and len(self._queue) < self.batch_size:
                    self._cond.wait(self.flush_interval_s)
                if self._closed and not self._queue and not self._retry:
                    return
                take = min(self.batch_size, len(self._queue))
                batch = self._retry or [self._queue.popleft() for _ in range(take)]
                self._retry = []
            if batch:
                self._write(batch)

    def _write(self, batch: list[tuple[int, AuditEvent]]) -> None:
        try:
            self._insert(event for _, event in batch)
        except Exception:
            self._table_ready = False  # perhaps dropped: check again on the next attempt
            self._failures += 1
            if self._failures < self.attempts:
                log.exception("Audit log write of %d events failed (attempt %d of %d); will retry",
                              len(batch), self._failures, self.attempts)
                with self._cond:
                    self._retry = batch
                    self._cond.wait(self.flush_interval_s)  # back off; close() and full queues cut it short
                return
            log.exception("Audit log write failed %d times: dropped %d events", self._failures, len(batch))
            with self._cond:
                self.dropped += len(batch)
        self._failures = 0
        with self._cond:
            self._done = max(self._done, batch[-1][0])
            self._cond.notify_all()

    def _insert(self, events: Iterable[AuditEvent]) -> None:
        if not self._table_ready:
            create_table(self.engine)
            self._table_ready = True
        with self.engine.begin() as conn:
            conn.execute(insert(AuditRecord.__table__), [event.row() for event in events])  # type: ignore[arg-type]
