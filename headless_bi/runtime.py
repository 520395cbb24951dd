"""What a running service holds: settings, the current model version and the warehouse.

The model is swapped atomically on reload (a new immutable `SemanticModel`), so a request that
started on the old version finishes on it. Queries run in worker threads: DuckDB work must never
block the event loop that serves GraphQL and WebSocket pings.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from headless_bi.live import LiveHub
from headless_bi.result_cache import ResultCache
from headless_bi.security.context import SecurityContext
from headless_bi.security.govern import govern
from headless_bi.security.guard import QueryGuard
from headless_bi.semantic.loader import load_models
from headless_bi.semantic.model import SemanticModel
from headless_bi.service import QueryResult, run_query
from headless_bi.warehouse.base import Warehouse


@dataclass(frozen=True)
class Settings:
    """Service settings; every field can come from an `HBI_<NAME>` environment variable."""

    models: str = "semantic_models/demo"
    warehouse: str = "var/demo.duckdb"
    host: str = "127.0.0.1"
    port: int = 8000
    metadata_url: str = "sqlite:///var/metadata.db"
    redis_url: str | None = None
    secret_key: str = ""
    query_timeout_s: float = 30.0
    default_limit: int = 10_000
    max_rows: int = 50_000
    max_depth: int = 10
    max_complexity: int = 5_000
    max_body_bytes: int = 1_000_000
    live_min_interval_s: float = 1.0
    live_max_per_user: int = 20  # open live subscriptions per user in one process
    live_max_total: int = 2000  # open live subscriptions in one process
    live_prefix: str = "hbi:live:"  # Redis key prefix, so several deployments can share one Redis
    watch_models: bool = False
    query_threads: int = 8
    # Security: with no role here, a request without credentials is refused; set e.g. "Viewer" to let
    # anonymous callers in with that role's policies.
    anonymous_role: str = ""
    token_ttl_s: int = 3600  # default lifetime of bearer tokens from the login endpoint / `token`
    rate_limit_per_minute: int = 600  # queries per user and minute; 0 turns the limit off
    login_attempts_per_minute: int = 10  # POST /auth/token tries per user name and minute (0: no limit)
    audit: bool = True  # write every query to the audit log table of the metadata DB
    result_cache_ttl_s: float = 10.0  # callers' results are reused this long (0: off); live polls never
    nlq_proposer: str = ""  # `module:factory` of a plugged-in question → query proposer (headless_bi.nlq)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        for name, spec in cls.__dataclass_fields__.items():
            raw = os.environ.get(f"HBI_{name.upper()}")
            if raw is None:
                continue
            kind = type(spec.default) if spec.default is not None else str
            values[name] = raw.lower() in ("1", "true", "yes") if kind is bool else kind(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def open_warehouse(target: str, *, timeout_s: float, pool_size: int = 4) -> Warehouse:
    """A DuckDB file (read-only for serving) or a `postgresql://` URL."""
    if target.startswith(("postgres://", "postgresql://")):
        from headless_bi.warehouse.postgres_warehouse import PostgresWarehouse

        return PostgresWarehouse(target, pool_size=pool_size, default_timeout_s=timeout_s)
    from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse

    read_only = target != ":memory:" and Path(target).exists()
    return DuckDBWarehouse(target, read_only=read_only, pool_size=pool_size, default_timeout_s=timeout_s)


@dataclass
class Runtime:
    settings: Settings
    warehouse: Warehouse
    _model: SemanticModel
    _listeners: list[Callable[[SemanticModel], Callable[[], None]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    live: LiveHub = field(init=False, repr=False)  # live queries; `await live.aclose()` on shutdown
    guard: QueryGuard = field(init=False, repr=False)  # rate limit and audit log of callers' queries
    results: ResultCache = field(init=False, repr=False)  # recent results of callers' queries
    _proposer: Any = field(default=None, init=False, repr=False)  # question → query, loaded on first ask

    def __post_init__(self) -> None:
        self.live = LiveHub(self)
        self.guard = QueryGuard(self.settings)
        self.results = ResultCache(self.settings.result_cache_ttl_s)

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        model = load_models(settings.models)
        warehouse = open_warehouse(
            settings.warehouse, timeout_s=settings.query_timeout_s, pool_size=settings.query_threads
        )
        return cls(settings, warehouse, model)

    @property
    def model(self) -> SemanticModel:
        return self._model

    def reload(self) -> SemanticModel:
        """Load the models again and swap them in with everything built from them (the GraphQL
        schema), or not at all: if loading or any preparation fails, the running version stays."""
        model = load_models(self.settings.models)
        if model.version == self._model.version:
            return self._model
        commits = [prepare(model) for prepare in list(self._listeners)]  # may raise: nothing swapped yet
        with self._lock:
            self._model = model
            for commit in commits:
                commit()
        return model

    def on_reload(self, prepare: Callable[[SemanticModel], Callable[[], None]]) -> None:
        """`prepare(new_model)` builds what depends on the model and returns the function that
        installs it; it runs before the swap and may raise to refuse the new version."""
        self._listeners.append(prepare)

    def query(
        self,
        query: dict[str, Any],
        *,
        now: datetime | None = None,
        security: SecurityContext | None = None,
        path: str | None = None,
    ) -> QueryResult:
        """Run on the calling thread (CLI, workers) under `security` (None: the operator, no policies).

        A caller's query (`path` names the way in: load, cube, live, ask, export...) is rate limited
        and written to the audit log, refused or not; internal re-runs (`path=None`, e.g. a live
        query's polls) are neither.
        """
        audited = security is not None and path is not None
        started = time.perf_counter()
        try:
            if audited:
                self.guard.admit(security)  # type: ignore[arg-type]
            result = run_query(
                self._model,
                self.warehouse,
                query,
                now=now,
                security=security,
                timeout_s=self.settings.query_timeout_s,
                default_limit=self.settings.default_limit,
                max_limit=self.settings.max_rows,
                cache=self.results if path is not None else None,
            )
        except Exception as exc:
            if audited:
                self.guard.record(
                    security, path, query, duration_ms=_ms(started), error=exc  # type: ignore[arg-type]
                )
            raise
        if audited:
            self.guard.record(
                security,  # type: ignore[arg-type]
                path,  # type: ignore[arg-type]
                query,
                sql=result.sql,
                rows=result.table.num_rows,
                duration_ms=_ms(started),
            )
        return result

    def ask(
        self, question: str, *, security: SecurityContext | None = None, today: date | None = None
    ) -> Any:
        """Answer a question in plain language as `security` (None: the operator): the proposal is
        made on the caller's governed model and run through `query` (path "ask": audited)."""
        from headless_bi.nlq.answer import ask
        from headless_bi.nlq.proposer import load_proposer

        if self._proposer is None:
            self._proposer = load_proposer(self.settings.nlq_proposer)
        model = self._model if security is None else govern(self._model, security).model
        return ask(
            question,
            model=model,
            execute=lambda q: self.query(q, security=security, path="ask"),
            probe=lambda q: self.query(q, security=security),
            today=today or date.today(),
            context_key=(id(self.warehouse), None if security is None else security.policy_key),
            proposer=self._proposer,
        )

    async def run(
        self,
        query: dict[str, Any],
        *,
        now: datetime | None = None,
        security: SecurityContext | None = None,
        path: str | None = None,
    ) -> QueryResult:
        """Run in a worker thread so the event loop keeps serving other requests."""
        return await asyncio.to_thread(self.query, query, now=now, security=security, path=path)

    def close(self) -> None:
        self.guard.close()
        self.warehouse.close()
