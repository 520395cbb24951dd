"""The one interface the service needs from a database, so DuckDB and PostgreSQL are interchangeable."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class Warehouse(Protocol):
    """Runs SQL written in its `dialect` (a sqlglot dialect name) and returns the rows as Arrow.

    Implementations must be safe to call from many threads at once, enforce `timeout_s`
    (raising `QueryTimeoutError`) and turn driver errors into `QueryError`.
    """

    dialect: str

    def execute(self, sql: str, *, timeout_s: float | None = None) -> pa.Table:
        """Run one query; `timeout_s=None` means the warehouse's default limit."""
        ...

    def ping(self, timeout_s: float = 2.0) -> None:
        """Prove the database answers, outside the query pool; raise QueryError if it does not."""
        ...

    def close(self) -> None:
        """Release connections; later calls to `execute` fail."""
        ...
