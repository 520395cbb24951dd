"""PostgresWarehouse against the real server: Arrow typing, UTC, timeouts, errors, Parquet loading.

Every test works in its own schema (set as the search_path through the DSN) and drops it after.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headless_bi.errors import QueryError, QueryTimeoutError
from headless_bi.warehouse import Warehouse
from headless_bi.warehouse.postgres_warehouse import PostgresWarehouse, pg_type

pytestmark = pytest.mark.postgres


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    name = f"hbi_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def wh(pg_dsn: str, schema: str) -> Iterator[PostgresWarehouse]:
    warehouse = PostgresWarehouse(f"{pg_dsn} options=-csearch_path={schema}", pool_size=4)
    yield warehouse
    warehouse.close()


def test_is_a_warehouse(wh: PostgresWarehouse) -> None:
    assert isinstance(wh, Warehouse)
    assert wh.dialect == "postgres"


def test_result_types(wh: PostgresWarehouse) -> None:
    table = wh.execute(
        "SELECT 1::int AS i, 2::bigint AS b, 1.5::numeric(15,2) AS d, sum(x) AS s, 'a%' AS t, "
        "true AS f, DATE '2024-02-29' AS day, TIMESTAMP '2024-01-01 12:00' AS ts, "
        "TIMESTAMPTZ '2024-01-01 12:00+02' AS tstz, 0.5::float8 AS r, NULL::numeric AS n "
        "FROM (VALUES (1.25::numeric), (2.5)) v(x)"
    )
    types = {f.name: f.type for f in table.schema}
    assert types["i"] == pa.int32() and types["b"] == pa.int64()
    assert types["d"] == pa.decimal128(15, 2)
    assert types["s"] == pa.decimal128(38, 2)  # unconstrained numeric: widest scale seen
    assert types["t"] == pa.string() and types["f"] == pa.bool_()
    assert types["day"] == pa.date32()
    assert types["ts"] == pa.timestamp("us") and types["tstz"] == pa.timestamp("us", tz="UTC")
    row = table.to_pylist()[0]
    assert row["d"] == Decimal("1.50") and row["s"] == Decimal("3.75") and row["t"] == "a%"
    assert row["day"] == dt.date(2024, 2, 29)
    assert row["tstz"] == dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.UTC)
    assert row["n"] is None


def test_empty_result_keeps_columns(wh: PostgresWarehouse) -> None:
    table = wh.execute("SELECT 1 AS a, 'x'::text AS b WHERE false")
    assert table.num_rows == 0
    assert table.schema == pa.schema([("a", pa.int32()), ("b", pa.string())])


def test_session_is_utc(wh: PostgresWarehouse) -> None:
    with ThreadPoolExecutor(4) as pool:
        zones = set(pool.map(lambda _: wh.execute("SHOW TIME ZONE").column(0)[0].as_py(), range(12)))
    assert zones == {"UTC"}


def test_threads_share_the_pool(wh: PostgresWarehouse) -> None:
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: wh.execute(f"SELECT {i} AS i").column("i")[0].as_py(), range(100)))
    assert results == list(range(100))


def test_timeout_cancels_the_statement(wh: PostgresWarehouse) -> None:
    start = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"time limit of 1 s"):
        wh.execute("SELECT pg_sleep(10)", timeout_s=1.0)
    assert 0.9 <= time.monotonic() - start < 2.0
    # The connection survives and the next query gets its own (default) limit.
    assert wh.execute("SELECT pg_sleep(1.2), 7 AS x").column("x")[0].as_py() == 7


def test_errors_become_query_errors(wh: PostgresWarehouse) -> None:
    with pytest.raises(QueryError, match="does not exist") as info:
        wh.execute("SELECT * FROM no_such_table")
    assert "Traceback" not in info.value.message
    with pytest.raises(QueryError, match="syntax error"):
        wh.execute("SELEC 1")
    assert wh.execute("SELECT 1 AS ok").column("ok")[0].as_py() == 1


def test_load_parquet_matches_duckdb(wh: PostgresWarehouse, shared_data: Path) -> None:
    path = shared_data / "tpch_sf0.1" / "customer.parquet"
    assert wh.load_parquet("customer", path) == 15_000
    assert wh.tables() == ["customer"]
    assert wh.table_columns()["customer"]["c_acctbal"] == "numeric"
    got = wh.execute("SELECT count(*) AS n, sum(c_acctbal) AS total, max(c_name) AS top FROM customer")
    with duckdb.connect() as con:
        expected = con.execute(
            "SELECT count(*) AS n, sum(c_acctbal) AS total, max(c_name) AS top FROM read_parquet(?)",
            [str(path)],
        ).fetchone()
    assert tuple(got.to_pylist()[0].values()) == expected
    # Loading again replaces the table instead of appending.
    assert wh.load_parquet("customer", path) == 15_000
    assert wh.execute("SELECT count(*) AS n FROM customer").column("n")[0].as_py() == 15_000


def test_load_parquet_round_trips_types(wh: PostgresWarehouse, tmp_path: Path) -> None:
    source = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "price": pa.array([Decimal("1.50"), None, Decimal("-2.25")], pa.decimal128(15, 2)),
        "name": ["plain", "", None],
        "quote": ['a "quoted", comma', "line\nbreak", "ünïcödé"],
        "ok": [True, False, None],
        "day": pa.array([dt.date(2024, 1, 1), None, dt.date(1992, 12, 31)], pa.date32()),
        "at": pa.array([dt.datetime(2024, 1, 1, 1, 2, 3, 456789), None, None], pa.timestamp("ns")),
        "ratio": [0.5, float("nan"), None],
        "tags": [["a", "b"], [], None],
    })
    pq.write_table(source, tmp_path / "t.parquet")
    assert wh.load_parquet("typed", tmp_path / "t.parquet", schema=None) == 3
    back = wh.execute("SELECT * FROM typed ORDER BY id")
    assert back.schema.field("price").type == pa.decimal128(15, 2)
    rows = back.to_pylist()
    assert [r["price"] for r in rows] == [Decimal("1.50"), None, Decimal("-2.25")]
    assert [r["name"] for r in rows] == ["plain", "", None]  # empty string and NULL stay distinct
    assert [r["quote"] for r in rows] == source.column("quote").to_pylist()
    assert [r["ok"] for r in rows] == [True, False, None]
    assert [r["day"] for r in rows] == source.column("day").to_pylist()
    assert rows[0]["at"] == dt.datetime(2024, 1, 1, 1, 2, 3, 456789)
    assert rows[0]["ratio"] == 0.5 and rows[1]["ratio"] != rows[1]["ratio"] and rows[2]["ratio"] is None
    assert [r["tags"] for r in rows] == ['["a", "b"]', "[]", None]  # nested → jsonb


def test_load_parquet_into_a_named_schema(pg_dsn: str, schema: str, shared_data: Path) -> None:
    with PostgresWarehouse(pg_dsn) as warehouse:
        nation = shared_data / "tpch_sf0.1" / "nation.parquet"
        assert warehouse.load_parquet("nation", nation, schema=schema) == 25
        assert warehouse.execute(f'SELECT count(*) AS n FROM "{schema}".nation').column("n")[0].as_py() == 25


@pytest.mark.parametrize(
    ("arrow_type", "pg"),
    [
        (pa.int32(), "integer"), (pa.int64(), "bigint"), (pa.float64(), "double precision"),
        (pa.decimal128(15, 2), "numeric(15,2)"), (pa.string(), "text"), (pa.large_string(), "text"),
        (pa.bool_(), "boolean"), (pa.date32(), "date"), (pa.timestamp("us"), "timestamp"),
        (pa.timestamp("ns", tz="UTC"), "timestamptz"), (pa.binary(), "bytea"),
        (pa.list_(pa.float64()), "jsonb"), (pa.dictionary(pa.int32(), pa.string()), "text"),
    ],
)
def test_pg_type(arrow_type: pa.DataType, pg: str) -> None:
    assert pg_type(arrow_type) == pg


def test_a_dropped_connection_is_replaced(pg_dsn: str) -> None:
    with PostgresWarehouse(pg_dsn, pool_size=1) as warehouse:
        pid = warehouse.execute("SELECT pg_backend_pid() AS p").column("p")[0].as_py()
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(QueryError):
            warehouse.execute("SELECT 1")
        assert warehouse.execute("SELECT pg_backend_pid() AS p").column("p")[0].as_py() != pid
