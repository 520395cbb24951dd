"""DuckDB as a thread-safe warehouse: one database, a pool of cursors, per-query timeouts."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from headless_bi.errors import HeadlessBIError, QueryError, QueryTimeoutError
from headless_bi.warehouse.watchdog import WATCHDOG

_SESSION_SETUP = ("SET TimeZone = 'UTC'",)



def connect_file(path: str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file; a file another process holds (a running `serve` while `load` or
    `demo-data` writes) is a user error that says so, not an internal one."""
    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise QueryError(
                f"DuckDB database '{path}' is in use by another process (a running `headless-bi serve`?): "
                "DuckDB lets one process write a file; stop it first", value=path,
            ) from exc  # fmt: skip
        raise QueryError(f"Cannot open DuckDB database '{path}': {exc}") from exc
    except duckdb.Error as exc:
        raise QueryError(f"Cannot open DuckDB database '{path}': {exc}") from exc

class DuckDBWarehouse:
    """A DuckDB database shared by many threads.

    DuckDB allows one in-process instance per file, so we open one connection and hand out
    `cursor()` duplicates (each its own session) from a queue; a cursor is used by one thread
    at a time. Every session runs in UTC so naive timestamps compare as UTC everywhere.
    """

    dialect = "duckdb"

    def __init__(
        self,
        path: str = ":memory:",
        *,
        read_only: bool = False,
        pool_size: int = 4,
        default_timeout_s: float = 30.0,
    ):
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.path = path
        self.default_timeout_s = default_timeout_s
        self._con = connect_file(path, read_only=read_only)
        self._pool: queue.Queue[duckdb.DuckDBPyConnection] = queue.Queue()
        self._ping_lock = threading.Lock()
        self._ping_cursor: duckdb.DuckDBPyConnection | None = None
        self._closed = False
        for _ in range(pool_size):
            cursor = self._con.cursor()
            for statement in _SESSION_SETUP:
                cursor.execute(statement)
            self._pool.put(cursor)

    def execute(self, sql: str, *, timeout_s: float | None = None) -> pa.Table:
        """Run `sql` and return all rows.

        `timeout_s=None` uses the default limit, `0` means no limit; waiting for a free cursor
        counts against the limit so a saturated pool cannot hold a request forever.
        """
        limit = self.default_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit if limit and limit > 0 else None
        with self._cursor(deadline, limit) as cursor:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            return self._run(cursor, sql, remaining, limit)

    def tables(self) -> list[str]:
        """Tables and views, sorted; those outside the current schema are named `schema.table`."""
        return sorted(self.table_columns())

    def table_columns(self) -> dict[str, dict[str, str]]:
        """Table → column → DuckDB type (e.g. `DECIMAL(15,2)`) in column order, for schema-aware compiling."""
        result = self.execute(
            "SELECT table_schema, table_name, column_name, data_type, table_schema = current_schema() "
            "FROM information_schema.columns WHERE table_catalog = current_database() "
            "ORDER BY table_schema, table_name, ordinal_position"
        )
        out: dict[str, dict[str, str]] = {}
        for schema, table, column, data_type, is_current in zip(*result.to_pydict().values(), strict=True):
            name = table if is_current else f"{schema}.{table}"
            out.setdefault(name, {})[column] = data_type
        return out

    def ping(self, timeout_s: float = 2.0) -> None:
        """`SELECT 1` on a session of its own: a busy query pool must not look like a dead database."""
        with self._ping_lock:
            if self._ping_cursor is None:
                self._ping_cursor = self._con.cursor()
            self._run(self._ping_cursor, "SELECT 1", timeout_s, timeout_s)

    def close(self) -> None:
        """Close idle cursors and the database; cursors still in use are closed when returned."""
        self._closed = True
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break
        self._con.close()

    def __enter__(self) -> DuckDBWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _cursor(self, deadline: float | None, limit: float) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._closed:
            raise HeadlessBIError("The DuckDB warehouse is closed.")
        wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            cursor = self._pool.get(timeout=wait)
        except queue.Empty:
            raise QueryTimeoutError(
                f"Query exceeded the time limit of {limit:g} s waiting for a free database connection."
            ) from None
        try:
            yield cursor
        finally:
            if self._closed:
                cursor.close()
            else:
                self._pool.put(cursor)

    @staticmethod
    def _run(cursor: duckdb.DuckDBPyConnection, sql: str, timeout_s: float | None, limit: float) -> pa.Table:
        # The deadline interrupts only while this query runs: it is cancelled (under its lock) before
        # the cursor goes back to the pool, so a late deadline cannot hit the next caller's query.
        deadline = WATCHDOG.schedule(timeout_s, cursor.interrupt) if timeout_s is not None else None
        try:
            # `sql()` + `to_arrow_table()` is duckdb 2.0's copy-free Arrow path; statements that
            # return nothing (SET, CREATE without rows) give None.
            relation = cursor.sql(sql)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.InterruptException as exc:
            if deadline is not None and deadline.fired:
                raise QueryTimeoutError(
                    f"Query exceeded the time limit of {limit:g} s and was cancelled."
                ) from exc
            raise QueryError(f"Query was interrupted: {exc}") from exc
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc
        finally:
            if deadline is not None:
                deadline.cancel()
