"""DuckDBWarehouse: Arrow results, UTC sessions, the cursor pool under threads, timeouts, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from headless_bi.errors import HeadlessBIError, QueryError, QueryTimeoutError
from headless_bi.warehouse import DuckDBWarehouse, Warehouse

# Never finishes in practice (10^13 pairs), so only an interrupt can end it.
ENDLESS = "SELECT count(*) FROM range(100000000) a, range(100000) b WHERE a.range + b.range = -1"


@pytest.fixture
def wh() -> Iterator[DuckDBWarehouse]:
    warehouse = DuckDBWarehouse(pool_size=4)
    warehouse.execute(
        "CREATE TABLE orders AS SELECT range AS id, (range % 7)::DECIMAL(15,2) AS amount, "
        "TIMESTAMP '2024-01-01 00:00:00' + range * INTERVAL 1 HOUR AS ts FROM range(1000)"
    )
    yield warehouse
    warehouse.close()


def test_is_a_warehouse(wh: DuckDBWarehouse) -> None:
    assert isinstance(wh, Warehouse)
    assert wh.dialect == "duckdb"


def test_returns_arrow_with_decimals(wh: DuckDBWarehouse) -> None:
    table = wh.execute("SELECT count(*) AS n, sum(amount) AS total FROM orders")
    assert isinstance(table, pa.Table)
    assert table.column_names == ["n", "total"]
    assert pa.types.is_decimal(table.schema.field("total").type)
    assert table.to_pylist() == [{"n": 1000, "total": Decimal(sum(i % 7 for i in range(1000)))}]


def test_statement_without_rows_gives_a_table(wh: DuckDBWarehouse) -> None:
    assert isinstance(wh.execute("CREATE TABLE t (x INT)"), pa.Table)


def test_every_session_is_utc(wh: DuckDBWarehouse) -> None:
    def zone(_: int) -> str:
        return wh.execute("SELECT current_setting('TimeZone') AS tz").column("tz")[0].as_py()

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(zone, range(32))) == {"UTC"}
    # A naive timestamp compared with a UTC instant lines up exactly.
    same = wh.execute("SELECT TIMESTAMP '2024-01-01 12:00:00' = TIMESTAMPTZ '2024-01-01 12:00:00+00' AS same")
    assert same.column("same")[0].as_py() is True


def test_pool_under_many_threads(wh: DuckDBWarehouse) -> None:
    def run(i: int) -> tuple[int, int]:
        row = wh.execute(f"SELECT {i} AS i, count(*) AS n FROM orders WHERE id < {i}").to_pylist()[0]
        return row["i"], row["n"]

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(run, range(400)))
    assert results == [(i, min(i, 1000)) for i in range(400)]


def test_queries_run_concurrently() -> None:
    # Two endless queries on two cursors both time out after ~1 s: they ran side by side, not in turn.
    warehouse = DuckDBWarehouse(pool_size=2)

    def endless(_: int) -> str:
        with pytest.raises(QueryTimeoutError) as info:
            warehouse.execute(ENDLESS, timeout_s=1.0)
        return info.value.code

    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(endless, range(2))) == ["TIMEOUT", "TIMEOUT"]
    assert time.monotonic() - start < 1.9
    warehouse.close()


def test_timeout_interrupts_a_long_query(wh: DuckDBWarehouse) -> None:
    start = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"time limit of 1 s") as info:
        wh.execute(ENDLESS, timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.0, elapsed
    assert info.value.code == "TIMEOUT"


def test_default_timeout_applies() -> None:
    warehouse = DuckDBWarehouse(default_timeout_s=0.5)
    start = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"0\.5 s"):
        warehouse.execute(ENDLESS)
    assert time.monotonic() - start < 1.5
    warehouse.close()


def test_cursor_is_reusable_after_timeout_and_late_timers_do_not_leak() -> None:
    warehouse = DuckDBWarehouse(pool_size=1)  # every query reuses the same cursor
    with pytest.raises(QueryTimeoutError):
        warehouse.execute(ENDLESS, timeout_s=0.3)
    assert warehouse.execute("SELECT 42 AS x").column("x")[0].as_py() == 42
    # A fast query with a short limit: its timer must not interrupt the next query after it.
    warehouse.execute("SELECT 1", timeout_s=0.2)
    slow = "SELECT count(*) AS n FROM range(60000000) a WHERE hash(a.range) % 5 = 1"
    assert warehouse.execute(slow, timeout_s=30).column("n")[0].as_py() > 0
    warehouse.close()


def test_waiting_for_a_busy_pool_counts_against_the_limit() -> None:
    warehouse = DuckDBWarehouse(pool_size=1)

    def block() -> None:
        with pytest.raises(QueryTimeoutError):
            warehouse.execute(ENDLESS, timeout_s=1.2)

    blocker = threading.Thread(target=block)
    blocker.start()
    time.sleep(0.2)
    start = time.monotonic()
    with pytest.raises(QueryTimeoutError, match="free database connection"):
        warehouse.execute("SELECT 1", timeout_s=0.5)
    assert time.monotonic() - start < 1.2
    blocker.join()
    warehouse.close()


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT * FROM no_such_table", "Catalog Error"),
        ("SELECT no_such_column FROM orders", "Binder Error"),
        ("SELECT 'abc'::INTEGER", "Conversion Error"),
        ("SELEC 1", "Parser Error"),
    ],
)
def test_duckdb_errors_become_query_errors(wh: DuckDBWarehouse, sql: str, fragment: str) -> None:
    with pytest.raises(QueryError) as info:
        wh.execute(sql)
    assert fragment in info.value.message
    assert "Traceback" not in info.value.message
    assert info.value.code == "BAD_QUERY"
    assert not isinstance(info.value, QueryTimeoutError)


def test_tables_and_columns(wh: DuckDBWarehouse) -> None:
    wh.execute("CREATE SCHEMA other")
    wh.execute("CREATE TABLE other.t (x INT)")
    wh.execute("CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 5")
    assert wh.tables() == ["big_orders", "orders", "other.t"]
    columns = wh.table_columns()
    assert columns["orders"] == {"id": "BIGINT", "amount": "DECIMAL(15,2)", "ts": "TIMESTAMP"}
    assert list(columns["orders"]) == ["id", "amount", "ts"]
    assert columns["other.t"] == {"x": "INTEGER"}


def test_read_only_file(tmp_path: Path) -> None:
    path = str(tmp_path / "ro.duckdb")
    with DuckDBWarehouse(path) as writer:
        writer.execute("CREATE TABLE t AS SELECT 1 AS x")
    with DuckDBWarehouse(path, read_only=True) as reader:
        assert reader.execute("SELECT x FROM t").to_pylist() == [{"x": 1}]
        with pytest.raises(QueryError, match="read-only"):
            reader.execute("INSERT INTO t VALUES (2)")


def test_closed_warehouse_refuses_queries() -> None:
    warehouse = DuckDBWarehouse()
    warehouse.close()
    with pytest.raises(HeadlessBIError, match="closed"):
        warehouse.execute("SELECT 1")
