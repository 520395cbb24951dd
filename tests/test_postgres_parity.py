"""The same semantic queries on PostgreSQL and on DuckDB give the same numbers (TPC-H sf0.1).

The TPC-H tables are loaded once into the PostgreSQL schema `hbi_parity_tpch_sf01` (under an advisory
lock, so concurrent runs do not race) and reused while every table has the expected row count. The
compiled SQL names tables bare (`lineitem`), so the warehouse connects with `search_path` set to that
schema through the DSN's `options`.

Decimals must match exactly, floats (DuckDB's AVG of decimals, ratios) to 1e-9 relative.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from headless_bi.semantic.loader import load_models
from headless_bi.service import run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse
from headless_bi.warehouse.files import load_files
from headless_bi.warehouse.postgres_warehouse import PostgresWarehouse

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "hbi_parity_tpch_sf01"
TABLES = ("customer", "lineitem", "nation", "orders", "part", "region", "supplier")


@pytest.fixture(scope="module")
def model():
    return load_models(REPO / "semantic_models" / "tpch")


@pytest.fixture(scope="module")
def pg(pg_dsn: str, shared_data: Path):
    folder = shared_data / "tpch_sf0.1"
    expected = {t: pq.ParquetFile(folder / f"{t}.parquet").metadata.num_rows for t in TABLES}
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [SCHEMA])
        try:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
            stale = []
            for table in TABLES:
                exists = conn.execute("SELECT to_regclass(%s)", [f'"{SCHEMA}"."{table}"']).fetchone()[0]
                rows = -1
                if exists:
                    rows = conn.execute(f'SELECT count(*) FROM "{SCHEMA}"."{table}"').fetchone()[0]
                if rows != expected[table]:
                    stale.append(table)
            if stale:
                loader = PostgresWarehouse(pg_dsn, pool_size=1)
                try:
                    for table in stale:
                        loaded = loader.load_parquet(table, folder / f"{table}.parquet", schema=SCHEMA)
                        assert loaded == expected[table]
                finally:
                    loader.close()
                for table in stale:
                    conn.execute(f'ANALYZE "{SCHEMA}"."{table}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [SCHEMA])
    wh = PostgresWarehouse(f"{pg_dsn} options=-csearch_path={SCHEMA}", pool_size=2, default_timeout_s=60)
    assert wh.execute("SELECT count(*) AS n FROM lineitem").column(0)[0].as_py() == expected["lineitem"]
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def duck(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = shared_data / "tpch_sf0.1"
    path = tmp_path_factory.mktemp("parity_tpch") / "tpch.duckdb"
    load_files([folder / f"{t}.parquet" for t in TABLES], str(path))
    wh = DuckDBWarehouse(str(path), pool_size=2)
    yield wh
    wh.close()


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b
    if isinstance(a, float | Decimal) or isinstance(b, float | Decimal):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def results(model, wh, query):
    result = run_query(model, wh, {"limit": 50_000, **query})
    return result, [tuple(row.values()) for row in result.table.to_pylist()]


def assert_parity(model, duck, pg, query, *, ordered=False, n_keys=None):
    d_result, d_rows = results(model, duck, query)
    p_result, p_rows = results(model, pg, query)
    assert p_result.table.column_names == d_result.table.column_names
    assert d_rows, "the query should return rows"
    if n_keys is None:
        n_keys = len(query.get("dimensions", [])) + sum(1 for t in query.get("timeDimensions", [])
                                                         if "granularity" in t)
    if not ordered:
        d_rows = sorted(d_rows, key=lambda r: tuple((v is None, str(v)) for v in r[:n_keys]))
        p_rows = sorted(p_rows, key=lambda r: tuple((v is None, str(v)) for v in r[:n_keys]))
    assert len(p_rows) == len(d_rows)
    for d_row, p_row in zip(d_rows, p_rows, strict=True):
        assert d_row[:n_keys] == p_row[:n_keys]
        assert all(close(a, b) for a, b in zip(d_row, p_row, strict=True)), (d_row, p_row)
    if query.get("total"):
        assert p_result.total == d_result.total
    return d_rows


QUERIES = {
    "multi_grain_by_nation": {
        "measures": ["customer.balance", "orders.total_price", "lineitem.revenue"],
        "dimensions": ["nation.name"]},
    "multi_grain_by_shipmode": {
        "measures": ["orders.count", "orders.total_price", "lineitem.count"],
        "dimensions": ["lineitem.shipmode"]},
    "customer_balance_by_shipmode": {
        "measures": ["customer.balance", "customer.count"], "dimensions": ["lineitem.shipmode"]},
    "avg_over_distinct_orders": {
        "measures": ["orders.avg_total_price"], "dimensions": ["lineitem.returnflag"]},
    "count_distinct_direct": {
        "measures": ["lineitem.order_count"], "dimensions": ["lineitem.shipmode", "lineitem.linestatus"]},
    "count_distinct_fanned_out": {
        "measures": ["orders.customers"], "dimensions": ["lineitem.returnflag"]},
    "month_new_york": {
        "measures": ["lineitem.revenue", "lineitem.count"], "timezone": "America/New_York",
        "timeDimensions": [{"dimension": "orders.orderdate", "granularity": "month",
                            "dateRange": ["1995-01-01", "1995-12-31"]}]},
    "week_kolkata_with_dimension": {
        "measures": ["lineitem.quantity", "lineitem.discount_amount"], "dimensions": ["lineitem.shipmode"],
        "timezone": "Asia/Kolkata",
        "timeDimensions": [{"dimension": "lineitem.shipdate", "granularity": "week",
                            "dateRange": ["1996-03-01", "1996-04-30"]}]},
    "quarter_relative_range": {
        "measures": ["orders.count", "orders.total_price"], "timezone": "Europe/Berlin",
        "timeDimensions": [{"dimension": "orders.orderdate", "granularity": "quarter",
                            "dateRange": "from 1996-01-01 to 1997-06-30"}]},
    "string_filters": {
        "measures": ["lineitem.revenue", "lineitem.count"], "dimensions": ["lineitem.shipmode"],
        "filters": [{"member": "lineitem.shipinstruct", "operator": "contains", "values": ["deliver"]},
                    {"member": "lineitem.returnflag", "operator": "notEquals", "values": ["R"]},
                    {"member": "part.type", "operator": "startsWith", "values": ["promo", "LARGE"]},
                    {"or": [{"member": "lineitem.discount", "operator": "gte", "values": [0.05]},
                            {"member": "part.container", "operator": "endsWith", "values": ["box"]}]}]},
    "filter_on_child_for_parent_measure": {
        "measures": ["orders.total_price", "orders.count"], "dimensions": ["orders.orderpriority"],
        "filters": [{"member": "lineitem.shipmode", "operator": "equals", "values": ["MAIL", "AIR"]},
                    {"member": "lineitem.shipdate", "operator": "beforeDate", "values": ["1995-06-17"]}]},
    "segments_and_filtered_measures": {
        "measures": ["lineitem.high_priority_count", "lineitem.low_priority_count", "lineitem.charge"],
        "dimensions": ["region.name"], "segments": ["lineitem.late_delivery"]},
    "derived_ratio_by_year": {
        "measures": ["lineitem.promo_revenue_share", "lineitem.avg_discount"],
        "timeDimensions": [{"dimension": "lineitem.shipdate", "granularity": "year"}]},
    "no_dimensions_multi_grain": {
        "measures": ["customer.balance", "orders.total_price", "lineitem.revenue", "supplier.balance"]},
    "dimensions_only": {"dimensions": ["region.name", "nation.name"]},
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_parity(model, duck, pg, name):
    assert_parity(model, duck, pg, QUERIES[name])


def test_parity_having_order_limit_total(model, duck, pg):
    query = {"measures": ["lineitem.revenue", "lineitem.count"], "dimensions": ["nation.name"],
             "filters": [{"member": "lineitem.revenue", "operator": "gt", "values": [5_000_000]}],
             "order": [["lineitem.revenue", "desc"]], "limit": 5, "offset": 2, "total": True}
    rows = assert_parity(model, duck, pg, query, ordered=True)
    assert len(rows) == 5


def test_parity_time_dimension_values(model, duck, pg):
    """The bucket values themselves (local wall-clock starts) agree, in order."""
    query = {"measures": ["orders.count"], "timezone": "America/Los_Angeles",
             "timeDimensions": [{"dimension": "orders.orderdate", "granularity": "day",
                                 "dateRange": ["1994-03-01", "1994-03-31"]}]}
    rows = assert_parity(model, duck, pg, query, ordered=True)
    assert len(rows) == 31
