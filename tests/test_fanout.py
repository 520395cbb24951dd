"""Fan-out correctness: measures from cubes at different grains, checked against hand-written SQL.

Every expected value comes from plain SQL written here (EXISTS / DISTINCT sub-queries, one aggregate
per fact table), never from the compiler's output. Each case also checks that the naive join
(join everything, then aggregate) would give a different answer, so the test can tell a correct plan
from a naive one.

Semantics assumed (Cube's): a measure's cube is the root of LEFT JOINs to the cubes the query needs,
so rows of the measure's cube that reach no row of the dimension's cube fall into the NULL group; a
measure reached through a one_to_many join counts each of its rows once per group.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from headless_bi.semantic.loader import load_models
from headless_bi.service import run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse
from headless_bi.warehouse.files import load_files

REPO = Path(__file__).resolve().parents[1]
TPCH_TABLES = ("customer", "lineitem", "nation", "orders", "part", "region", "supplier")


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tpch_model():
    return load_models(REPO / "semantic_models" / "tpch")


@pytest.fixture(scope="session")
def tpch(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = shared_data / "tpch_sf0.1"
    path = tmp_path_factory.mktemp("fanout_tpch") / "tpch.duckdb"
    counts = load_files([folder / f"{t}.parquet" for t in TPCH_TABLES], str(path))
    assert counts["lineitem"] == 600_572 and counts["orders"] == 150_000
    wh = DuckDBWarehouse(str(path), pool_size=2)
    yield wh
    wh.close()


@pytest.fixture(scope="session")
def jaffle_model():
    return load_models(REPO / "tests" / "models" / "jaffle")


@pytest.fixture(scope="session")
def jaffle(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = shared_data / "jaffle_shop" / "classic"
    path = tmp_path_factory.mktemp("fanout_jaffle") / "jaffle.duckdb"
    counts = load_files([folder / f"raw_{t}.csv" for t in ("customers", "orders", "payments")], str(path))
    assert counts == {"raw_customers": 100, "raw_orders": 99, "raw_payments": 113}
    wh = DuckDBWarehouse(str(path), pool_size=2)
    yield wh
    wh.close()


# --- helpers ----------------------------------------------------------------------------------------------


def sql_rows(wh: DuckDBWarehouse, sql: str) -> list[tuple]:
    table = wh.execute(sql)
    columns = [c.to_pylist() for c in table.columns]  # by position: names may repeat
    return list(zip(*columns, strict=True))


def by_key(rows: list[tuple], n_keys: int) -> dict[tuple, tuple]:
    out: dict[tuple, tuple] = {}
    for row in rows:
        key = tuple(row[:n_keys])
        assert key not in out, f"group {key} appears twice"
        out[key] = tuple(row[n_keys:])
    return out


def semantic(model, wh, query: dict[str, Any]) -> dict[tuple, tuple]:
    """Run through the service; rows keyed by the query's dimensions (exact Arrow values, not JSON)."""
    result = run_query(model, wh, {"limit": 50_000, **query})
    dims = [*query.get("dimensions", [])]
    dims += [f"{t['dimension']}.{t['granularity']}" for t in query.get("timeDimensions", [])
             if "granularity" in t]
    measures = query.get("measures", [])
    table = result.table
    assert table.column_names == dims + measures, result.sql
    rows = [tuple(r[c] for c in dims + measures) for r in table.to_pylist()]
    return by_key(rows, len(dims))


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def assert_same(got: dict[tuple, tuple], expected: dict[tuple, tuple], sql: str = "") -> None:
    assert set(got) == set(expected), f"groups differ: missing {set(expected) - set(got)}, " \
                                      f"extra {set(got) - set(expected)}"
    bad = {k: (got[k], expected[k]) for k in expected
           if len(got[k]) != len(expected[k])
           or not all(same(a, b) for a, b in zip(got[k], expected[k], strict=True))}
    assert not bad, f"wrong values (got, expected): {dict(list(bad.items())[:5])}"


def differs(naive: dict[tuple, tuple], expected: dict[tuple, tuple]) -> bool:
    """The naive answer is wrong somewhere (different groups or a different value)."""
    if set(naive) != set(expected):
        return True
    return any(not all(same(a, b) for a, b in zip(naive[k], expected[k], strict=True)) for k in expected)


# --- TPC-H ------------------------------------------------------------------------------------------------


def test_three_grains_by_nation(tpch_model, tpch):
    """customer.balance + orders.total_price + lineitem.revenue by nation: each summed at its own grain."""
    query = {"measures": ["customer.balance", "orders.total_price", "lineitem.revenue"],
             "dimensions": ["nation.name"]}
    expected = by_key(sql_rows(tpch, """
        WITH bal AS (SELECT n.n_name, SUM(c.c_acctbal) AS b FROM customer c
                     JOIN nation n ON c.c_nationkey = n.n_nationkey GROUP BY 1),
             tp AS (SELECT n.n_name, SUM(o.o_totalprice) AS t FROM orders o
                    JOIN customer c ON o.o_custkey = c.c_custkey
                    JOIN nation n ON c.c_nationkey = n.n_nationkey GROUP BY 1),
             rev AS (SELECT n.n_name, SUM(l.l_extendedprice * (1 - l.l_discount)) AS r FROM lineitem l
                     JOIN orders o ON l.l_orderkey = o.o_orderkey
                     JOIN customer c ON o.o_custkey = c.c_custkey
                     JOIN nation n ON c.c_nationkey = n.n_nationkey GROUP BY 1)
        SELECT bal.n_name, bal.b, tp.t, rev.r FROM bal JOIN tp USING (n_name) JOIN rev USING (n_name)
    """), 1)
    assert len(expected) == 25
    got = semantic(tpch_model, tpch, query)
    assert_same(got, expected)

    naive = by_key(sql_rows(tpch, """
        SELECT n.n_name, SUM(c.c_acctbal), SUM(o.o_totalprice), SUM(l.l_extendedprice * (1 - l.l_discount))
        FROM customer c JOIN nation n ON c.c_nationkey = n.n_nationkey
        LEFT JOIN orders o ON o.o_custkey = c.c_custkey LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey
        GROUP BY 1
    """), 1)
    assert differs(naive, expected)
    # both the customer and the order measures are overcounted by the naive join
    some = next(iter(expected))
    assert naive[some][0] > 10 * expected[some][0] and naive[some][1] > 2 * expected[some][1]


def test_customer_balance_by_shipmode(tpch_model, tpch):
    """one_to_many: each customer's balance counts once per ship mode it has a line with."""
    expected = by_key(sql_rows(tpch, """
        SELECT m.l_shipmode, (SELECT SUM(c.c_acctbal) FROM customer c WHERE EXISTS (
                   SELECT 1 FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey
                   WHERE o.o_custkey = c.c_custkey AND l.l_shipmode = m.l_shipmode))
        FROM (SELECT DISTINCT l_shipmode FROM lineitem) m
        UNION ALL
        -- customers with no order reach no line item: they form the NULL group (LEFT JOIN semantics)
        SELECT NULL, SUM(c_acctbal) FROM customer WHERE c_custkey NOT IN (SELECT o_custkey FROM orders)
    """), 1)
    assert len(expected) == 8  # 7 ship modes + NULL
    got = semantic(tpch_model, tpch, {"measures": ["customer.balance"], "dimensions": ["lineitem.shipmode"]})
    assert_same(got, expected)

    naive = by_key(sql_rows(tpch, """
        SELECT l.l_shipmode, SUM(c.c_acctbal) FROM customer c
        LEFT JOIN orders o ON o.o_custkey = c.c_custkey LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey
        GROUP BY 1
    """), 1)
    assert naive[("MAIL",)][0] > 2 * expected[("MAIL",)][0]


def test_customer_count_by_shipmode(tpch_model, tpch):
    """A `count` measure through a one_to_many join counts distinct customers."""
    expected = by_key(sql_rows(tpch, """
        SELECT l.l_shipmode, COUNT(DISTINCT o.o_custkey) FROM orders o
        JOIN lineitem l ON l.l_orderkey = o.o_orderkey GROUP BY 1
        UNION ALL SELECT NULL, COUNT(*) FROM customer WHERE c_custkey NOT IN (SELECT o_custkey FROM orders)
    """), 1)
    got = semantic(tpch_model, tpch, {"measures": ["customer.count"], "dimensions": ["lineitem.shipmode"]})
    assert_same(got, expected)
    naive = by_key(sql_rows(tpch, """
        SELECT l.l_shipmode, COUNT(*) FROM customer c LEFT JOIN orders o ON o.o_custkey = c.c_custkey
        LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey GROUP BY 1"""), 1)
    assert differs(naive, expected)


def test_order_count_and_total_by_shipmode(tpch_model, tpch):
    """orders.count + orders.total_price by lineitem.shipmode: each order once per ship mode."""
    expected = by_key(sql_rows(tpch, """
        SELECT m.l_shipmode, COUNT(*), SUM(o.o_totalprice)
        FROM orders o JOIN (SELECT DISTINCT l_orderkey, l_shipmode FROM lineitem) m
          ON m.l_orderkey = o.o_orderkey
        GROUP BY 1
    """), 1)
    # cross-check the DISTINCT formulation with EXISTS for one mode
    (exists_count, exists_total), = sql_rows(tpch, """
        SELECT COUNT(*), SUM(o_totalprice) FROM orders o WHERE EXISTS (
            SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey AND l.l_shipmode = 'AIR')""")
    assert expected[("AIR",)] == (exists_count, exists_total)
    assert len(expected) == 7  # every order has line items: no NULL group

    got = semantic(tpch_model, tpch, {"measures": ["orders.count", "orders.total_price"],
                                      "dimensions": ["lineitem.shipmode"]})
    assert_same(got, expected)

    naive = by_key(sql_rows(tpch, """
        SELECT l.l_shipmode, COUNT(*), SUM(o.o_totalprice) FROM orders o
        JOIN lineitem l ON l.l_orderkey = o.o_orderkey GROUP BY 1"""), 1)
    assert all(naive[k][0] > expected[k][0] and naive[k][1] > expected[k][1] for k in expected)


def test_order_and_line_measures_by_shipmode(tpch_model, tpch):
    """A parent measure (de-duplicated) and a child measure (direct) in one query, combined on the key."""
    expected = by_key(sql_rows(tpch, """
        WITH o AS (SELECT m.l_shipmode, SUM(o.o_totalprice) AS t FROM orders o
                   JOIN (SELECT DISTINCT l_orderkey, l_shipmode FROM lineitem) m
                     ON m.l_orderkey = o.o_orderkey
                   GROUP BY 1),
             l AS (SELECT l_shipmode, COUNT(*) AS n, SUM(l_quantity) AS q FROM lineitem GROUP BY 1)
        SELECT o.l_shipmode, o.t, l.n, l.q FROM o JOIN l USING (l_shipmode)
    """), 1)
    got = semantic(tpch_model, tpch, {
        "measures": ["orders.total_price", "lineitem.count", "lineitem.quantity"],
        "dimensions": ["lineitem.shipmode"]})
    assert_same(got, expected)


def test_avg_total_price_by_returnflag_is_over_distinct_orders(tpch_model, tpch):
    expected = by_key(sql_rows(tpch, """
        SELECT m.l_returnflag, AVG(o.o_totalprice)
        FROM orders o JOIN (SELECT DISTINCT l_orderkey, l_returnflag FROM lineitem) m
          ON m.l_orderkey = o.o_orderkey
        GROUP BY 1
    """), 1)
    assert set(expected) == {("A",), ("N",), ("R",)}
    got = semantic(tpch_model, tpch, {"measures": ["orders.avg_total_price"],
                                      "dimensions": ["lineitem.returnflag"]})
    assert_same(got, expected)
    # the naive average weights each order by its number of lines, which changes the value
    naive = by_key(sql_rows(tpch, """
        SELECT l.l_returnflag, AVG(o.o_totalprice) FROM orders o
        JOIN lineitem l ON l.l_orderkey = o.o_orderkey GROUP BY 1"""), 1)
    assert all(abs(naive[k][0] - expected[k][0]) > 1 for k in expected)


def test_count_distinct_through_fan_out(tpch_model, tpch):
    """count_distinct of a parent column (orders.customers) and of a child column (lineitem.order_count)."""
    expected = by_key(sql_rows(tpch, """
        WITH c AS (SELECT l.l_shipmode, COUNT(DISTINCT o.o_custkey) AS customers
                   FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey GROUP BY 1),
             l AS (SELECT l_shipmode, COUNT(DISTINCT l_orderkey) AS order_count FROM lineitem GROUP BY 1)
        SELECT c.l_shipmode, c.customers, l.order_count FROM c JOIN l USING (l_shipmode)
    """), 1)
    got = semantic(tpch_model, tpch, {"measures": ["orders.customers", "lineitem.order_count"],
                                      "dimensions": ["lineitem.shipmode"]})
    assert_same(got, expected)


def test_count_distinct_by_nation_without_fan_out(tpch_model, tpch):
    expected = by_key(sql_rows(tpch, """
        SELECT r.r_name, COUNT(DISTINCT o.o_custkey), COUNT(*)
        FROM orders o JOIN customer c ON o.o_custkey = c.c_custkey
        JOIN nation n ON c.c_nationkey = n.n_nationkey JOIN region r ON n.n_regionkey = r.r_regionkey
        GROUP BY 1"""), 1)
    got = semantic(tpch_model, tpch, {"measures": ["orders.customers", "orders.count"],
                                      "dimensions": ["region.name"]})
    assert_same(got, expected)


def test_parent_measure_filtered_on_child_member(tpch_model, tpch):
    """orders.total_price where lineitem.shipmode = 'MAIL': each qualifying order counted once."""
    (expected_total, expected_count), = sql_rows(tpch, """
        SELECT SUM(o_totalprice), COUNT(*) FROM orders o WHERE EXISTS (
            SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey AND l.l_shipmode = 'MAIL')""")
    query = {"measures": ["orders.total_price", "orders.count"],
             "filters": [{"member": "lineitem.shipmode", "operator": "equals", "values": ["MAIL"]}]}
    got = semantic(tpch_model, tpch, query)
    assert_same(got, {(): (expected_total, expected_count)})

    (naive_total,), = sql_rows(tpch, """
        SELECT SUM(o.o_totalprice) FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey
        WHERE l.l_shipmode = 'MAIL'""")
    assert naive_total > expected_total


def test_parent_and_child_measures_filtered_on_child_member_by_priority(tpch_model, tpch):
    """The filter restricts both groups: orders having a MAIL line, and the MAIL lines themselves."""
    expected = by_key(sql_rows(tpch, """
        WITH o AS (SELECT o_orderpriority, SUM(o_totalprice) AS t FROM orders o WHERE EXISTS (
                       SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey AND l.l_shipmode = 'MAIL')
                   GROUP BY 1),
             l AS (SELECT o.o_orderpriority, SUM(l.l_extendedprice * (1 - l.l_discount)) AS r
                   FROM lineitem l JOIN orders o ON l.l_orderkey = o.o_orderkey
                   WHERE l.l_shipmode = 'MAIL' GROUP BY 1)
        SELECT o.o_orderpriority, o.t, l.r FROM o JOIN l USING (o_orderpriority)
    """), 1)
    query = {"measures": ["orders.total_price", "lineitem.revenue"], "dimensions": ["orders.orderpriority"],
             "filters": [{"member": "lineitem.shipmode", "operator": "equals", "values": ["MAIL"]}]}
    assert_same(semantic(tpch_model, tpch, query), expected)


def test_customer_count_by_nation_filtered_on_line_member(tpch_model, tpch):
    """A filter two one_to_many steps away (customer → orders → lineitem) must not multiply customers."""
    expected = by_key(sql_rows(tpch, """
        SELECT n.n_name, COUNT(*), SUM(c.c_acctbal) FROM customer c
        JOIN nation n ON c.c_nationkey = n.n_nationkey
        WHERE EXISTS (SELECT 1 FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey
                      WHERE o.o_custkey = c.c_custkey AND l.l_shipmode IN ('MAIL', 'SHIP'))
        GROUP BY 1"""), 1)
    query = {"measures": ["customer.count", "customer.balance"], "dimensions": ["nation.name"],
             "filters": [{"member": "lineitem.shipmode", "operator": "equals", "values": ["MAIL", "SHIP"]}]}
    assert_same(semantic(tpch_model, tpch, query), expected)


def test_measure_filter_on_fanned_out_measure(tpch_model, tpch):
    """HAVING on a de-duplicated measure uses the de-duplicated value."""
    expected = by_key(sql_rows(tpch, """
        SELECT m.l_shipmode, COUNT(*) FROM orders o
        JOIN (SELECT DISTINCT l_orderkey, l_shipmode FROM lineitem) m ON m.l_orderkey = o.o_orderkey
        GROUP BY 1 HAVING COUNT(*) > 65200"""), 1)
    assert 0 < len(expected) < 7  # the threshold splits the modes (naive counts are all > 85,000)
    query = {"measures": ["orders.count"], "dimensions": ["lineitem.shipmode"],
             "filters": [{"member": "orders.count", "operator": "gt", "values": [65200]}]}
    assert_same(semantic(tpch_model, tpch, query), expected)


def test_multi_grain_without_dimensions(tpch_model, tpch):
    """No dimensions: one row, each measure over its whole table."""
    (bal, tp, rev), = sql_rows(tpch, """
        SELECT (SELECT SUM(c_acctbal) FROM customer), (SELECT SUM(o_totalprice) FROM orders),
               (SELECT SUM(l_extendedprice * (1 - l_discount)) FROM lineitem)""")
    got = semantic(tpch_model, tpch, {"measures": ["customer.balance", "orders.total_price",
                                                   "lineitem.revenue"]})
    assert_same(got, {(): (bal, tp, rev)})


# --- Jaffle Shop ------------------------------------------------------------------------------------------


def test_jaffle_orders_and_payments_by_customer(jaffle_model, jaffle):
    expected = by_key(sql_rows(jaffle, """
        SELECT c.id,
               (SELECT COUNT(*) FROM raw_orders o WHERE o.user_id = c.id),
               (SELECT SUM(p.amount) FROM raw_payments p JOIN raw_orders o ON p.order_id = o.id
                WHERE o.user_id = c.id)
        FROM raw_customers c
        WHERE EXISTS (SELECT 1 FROM raw_orders o WHERE o.user_id = c.id)
    """), 1)
    got = semantic(jaffle_model, jaffle, {"measures": ["orders.count", "payments.amount"],
                                          "dimensions": ["customers.id"]})
    # customers without orders are absent from both groups (each measure's cube is the root)
    assert_same(got, expected)
    assert sum(v[0] for v in got.values()) == 99
    assert sum(v[1] for v in got.values()) == sql_rows(jaffle, "SELECT SUM(amount) FROM raw_payments")[0][0]

    naive = by_key(sql_rows(jaffle, """
        SELECT c.id, COUNT(o.id), SUM(p.amount) FROM raw_customers c
        JOIN raw_orders o ON o.user_id = c.id JOIN raw_payments p ON p.order_id = o.id GROUP BY 1"""), 1)
    assert differs(naive, expected)
    assert sum(v[0] for v in naive.values()) == 113  # orders counted once per payment


def test_jaffle_counts_by_customer_name(jaffle_model, jaffle):
    """customers.count next to orders.count: customer count from customers, orders from orders."""
    expected = by_key(sql_rows(jaffle, """
        WITH c AS (SELECT first_name, COUNT(*) AS n FROM raw_customers GROUP BY 1),
             o AS (SELECT c.first_name, COUNT(*) AS n FROM raw_orders o
                   JOIN raw_customers c ON o.user_id = c.id GROUP BY 1)
        SELECT c.first_name, c.n, o.n FROM c LEFT JOIN o USING (first_name)
    """), 1)
    got = semantic(jaffle_model, jaffle, {"measures": ["customers.count", "orders.count"],
                                          "dimensions": ["customers.first_name"]})
    assert_same(got, expected)


def test_jaffle_order_count_by_payment_method(jaffle_model, jaffle):
    expected = by_key(sql_rows(jaffle, """
        SELECT m.payment_method, COUNT(*), COUNT(DISTINCT o.user_id) FROM raw_orders o
        JOIN (SELECT DISTINCT order_id, payment_method FROM raw_payments) m ON m.order_id = o.id
        GROUP BY 1"""), 1)
    assert set(expected) == {("credit_card",), ("coupon",), ("bank_transfer",), ("gift_card",)}
    got = semantic(jaffle_model, jaffle, {"measures": ["orders.count", "orders.customer_count"],
                                          "dimensions": ["payments.payment_method"]})
    assert_same(got, expected)

    naive = by_key(sql_rows(jaffle, """
        SELECT p.payment_method, COUNT(*), COUNT(DISTINCT o.user_id) FROM raw_orders o
        JOIN raw_payments p ON p.order_id = o.id GROUP BY 1"""), 1)
    assert differs(naive, expected)


def test_jaffle_order_count_filtered_on_payment_method(jaffle_model, jaffle):
    """orders paid (at least partly) by coupon, each order once, by status."""
    expected = by_key(sql_rows(jaffle, """
        SELECT status, COUNT(*) FROM raw_orders o
        WHERE EXISTS (SELECT 1 FROM raw_payments p WHERE p.order_id = o.id AND p.payment_method = 'coupon')
        GROUP BY 1"""), 1)
    query = {"measures": ["orders.count"], "dimensions": ["orders.status"],
             "filters": [{"member": "payments.payment_method", "operator": "equals", "values": ["coupon"]}]}
    assert_same(semantic(jaffle_model, jaffle, query), expected)


def test_jaffle_customer_count_by_payment_method(jaffle_model, jaffle):
    """Two one_to_many steps (customers → orders → payments); customers without orders → NULL group."""
    expected = by_key(sql_rows(jaffle, """
        SELECT p.payment_method, COUNT(DISTINCT o.user_id) FROM raw_orders o
        JOIN raw_payments p ON p.order_id = o.id GROUP BY 1
        UNION ALL
        SELECT NULL, COUNT(*) FROM raw_customers WHERE id NOT IN (SELECT user_id FROM raw_orders)"""), 1)
    got = semantic(jaffle_model, jaffle, {"measures": ["customers.count"],
                                          "dimensions": ["payments.payment_method"]})
    assert_same(got, expected)


def test_jaffle_filtered_and_derived_measures_by_payment_method(jaffle_model, jaffle):
    """A measure whose filter reads a many_to_one cube (customers), de-duplicated through payments, and a
    derived ratio of two cubes' measures computed after both are aggregated."""
    expected = by_key(sql_rows(jaffle, """
        WITH o AS (SELECT m.payment_method, COUNT(*) AS n,
                          COUNT(*) FILTER (WHERE c.first_name LIKE 'A%') AS a_names
                   FROM raw_orders o JOIN (SELECT DISTINCT order_id, payment_method FROM raw_payments) m
                     ON m.order_id = o.id
                   JOIN raw_customers c ON c.id = o.user_id GROUP BY 1),
             p AS (SELECT payment_method, SUM(amount) AS amount FROM raw_payments GROUP BY 1)
        SELECT o.payment_method, o.a_names, 1.0 * p.amount / o.n FROM o JOIN p USING (payment_method)
    """), 1)
    got = semantic(jaffle_model, jaffle, {
        "measures": ["orders.count_for_a_names", "payments.amount_per_order"],
        "dimensions": ["payments.payment_method"]})
    got = {k: (v[0], float(v[1])) for k, v in got.items()}
    expected = {k: (v[0], float(v[1])) for k, v in expected.items()}
    assert_same(got, expected)


def test_segment_on_child_cube_restricts_parent_measure(tpch_model, tpch):
    """segments: [lineitem.returned] on orders measures: orders having a returned line, each once."""
    (count, total), = sql_rows(tpch, """
        SELECT COUNT(*), SUM(o_totalprice) FROM orders o WHERE EXISTS (
            SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey AND l.l_returnflag = 'R')""")
    got = semantic(tpch_model, tpch, {"measures": ["orders.count", "orders.total_price"],
                                      "segments": ["lineitem.returned"]})
    assert_same(got, {(): (count, total)})


def test_or_filter_across_parent_and_child_members(tpch_model, tpch):
    """or: [line ships by MAIL, order is urgent] on an order measure: an order qualifies once."""
    (count, total), = sql_rows(tpch, """
        SELECT COUNT(*), SUM(o_totalprice) FROM orders o
        WHERE o.o_orderpriority = '1-URGENT' OR EXISTS (
            SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey AND l.l_shipmode = 'MAIL')""")
    query = {"measures": ["orders.count", "orders.total_price"],
             "filters": [{"or": [{"member": "lineitem.shipmode", "operator": "equals", "values": ["MAIL"]},
                                 {"member": "orders.orderpriority", "operator": "equals",
                                  "values": ["1-URGENT"]}]}]}
    assert_same(semantic(tpch_model, tpch, query), {(): (count, total)})


def test_groups_with_a_null_key_in_only_one_fact_are_kept(tpch_model, tpch):
    """customer.count has a NULL ship-mode group (customers without orders), orders.count has none; the
    combined result keeps that group with orders.count NULL, and other groups match."""
    expected = by_key(sql_rows(tpch, """
        WITH c AS (SELECT l.l_shipmode, COUNT(DISTINCT o.o_custkey) AS n FROM orders o
                   JOIN lineitem l ON l.l_orderkey = o.o_orderkey GROUP BY 1
                   UNION ALL SELECT NULL, COUNT(*) FROM customer
                   WHERE c_custkey NOT IN (SELECT o_custkey FROM orders)),
             o AS (SELECT m.l_shipmode, COUNT(*) AS n FROM orders o
                   JOIN (SELECT DISTINCT l_orderkey, l_shipmode FROM lineitem) m
                     ON m.l_orderkey = o.o_orderkey
                   GROUP BY 1)
        SELECT c.l_shipmode, c.n, o.n FROM c LEFT JOIN o ON c.l_shipmode IS NOT DISTINCT FROM o.l_shipmode
    """), 1)
    assert expected[(None,)][1] is None and expected[(None,)][0] > 0
    got = semantic(tpch_model, tpch, {"measures": ["customer.count", "orders.count"],
                                      "dimensions": ["lineitem.shipmode"]})
    assert_same(got, expected)


def test_two_fanned_dimensions_and_a_time_dimension(tpch_model, tpch):
    """customer.balance by ship mode and order year: a customer counts once per (mode, year) it has."""
    expected = by_key(sql_rows(tpch, """
        SELECT k.l_shipmode, k.y, SUM(c.c_acctbal) FROM customer c JOIN (
            SELECT DISTINCT o.o_custkey, l.l_shipmode, DATE_TRUNC('year', o.o_orderdate)::TIMESTAMP AS y
            FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey
            WHERE o.o_orderdate >= DATE '1994-01-01' AND o.o_orderdate < DATE '1996-01-01') k
          ON k.o_custkey = c.c_custkey
        GROUP BY 1, 2"""), 2)
    assert len(expected) == 14
    query = {"measures": ["customer.balance"], "dimensions": ["lineitem.shipmode"],
             "timeDimensions": [{"dimension": "orders.orderdate", "granularity": "year",
                                 "dateRange": ["1994-01-01", "1995-12-31"]}]}
    assert_same(semantic(tpch_model, tpch, query), expected)


# --- the shipped Jaffle Shop model (semantic_models/jaffle_shop), amounts in dollars ------------------------


@pytest.fixture(scope="session")
def shop_model():
    return load_models(REPO / "semantic_models" / "jaffle_shop")


def dollars(rows: dict[tuple, tuple]) -> dict[tuple, tuple]:
    return {k: tuple(float(x) if isinstance(x, Decimal | float) else x for x in v) for k, v in rows.items()}


def test_shop_orders_and_payments_by_customer(shop_model, jaffle):
    expected = by_key(sql_rows(jaffle, """
        WITH o AS (SELECT user_id, COUNT(*) AS n FROM raw_orders GROUP BY 1),
             p AS (SELECT o.user_id, SUM(p.amount) / 100.0 AS amount FROM raw_payments p
                   JOIN raw_orders o ON p.order_id = o.id GROUP BY 1)
        SELECT o.user_id, o.n, p.amount FROM o JOIN p USING (user_id)"""), 1)
    got = semantic(shop_model, jaffle, {"measures": ["orders.count", "payments.amount"],
                                        "dimensions": ["customers.id"]})
    assert_same(dollars(got), dollars(expected))


def test_shop_return_rate_by_payment_method(shop_model, jaffle):
    """A derived ratio of two measures of a de-duplicated cube: both counts are over distinct orders."""
    expected = by_key(sql_rows(jaffle, """
        SELECT m.payment_method,
               1.0 * COUNT(*) FILTER (WHERE o.status IN ('returned', 'return_pending')) / COUNT(*)
        FROM raw_orders o JOIN (SELECT DISTINCT order_id, payment_method FROM raw_payments) m
          ON m.order_id = o.id
        GROUP BY 1"""), 1)
    got = semantic(shop_model, jaffle, {"measures": ["orders.return_rate"],
                                        "dimensions": ["payments.payment_method"]})
    assert_same(dollars(got), dollars(expected))
    naive = by_key(sql_rows(jaffle, """
        SELECT p.payment_method,
               1.0 * COUNT(*) FILTER (WHERE o.status IN ('returned', 'return_pending')) / COUNT(*)
        FROM raw_orders o JOIN raw_payments p ON p.order_id = o.id GROUP BY 1"""), 1)
    assert differs(dollars(naive), dollars(expected))


def test_shop_view_counts_orders_once_per_payment_method(shop_model, jaffle):
    """Through the customer_orders view (join_path orders.payments): order count and amount paid."""
    expected = by_key(sql_rows(jaffle, """
        WITH o AS (SELECT m.payment_method, COUNT(*) AS n FROM raw_orders o
                   JOIN (SELECT DISTINCT order_id, payment_method FROM raw_payments) m ON m.order_id = o.id
                   GROUP BY 1),
             p AS (SELECT payment_method, SUM(amount) / 100.0 AS amount FROM raw_payments GROUP BY 1)
        SELECT o.payment_method, o.n, p.amount FROM o JOIN p USING (payment_method)"""), 1)
    got = semantic(shop_model, jaffle, {"measures": ["customer_orders.count", "customer_orders.amount_paid"],
                                        "dimensions": ["customer_orders.payment_method"]})
    assert_same(dollars(got), dollars(expected))


def test_shop_view_amount_and_count_by_customer_first_name(shop_model, jaffle):
    expected = by_key(sql_rows(jaffle, """
        WITH o AS (SELECT c.first_name, COUNT(*) AS n FROM raw_orders o
                   JOIN raw_customers c ON c.id = o.user_id GROUP BY 1),
             p AS (SELECT c.first_name, SUM(p.amount) / 100.0 AS amount FROM raw_payments p
                   JOIN raw_orders o ON o.id = p.order_id JOIN raw_customers c ON c.id = o.user_id GROUP BY 1)
        SELECT o.first_name, p.amount, o.n FROM o JOIN p USING (first_name)"""), 1)
    got = semantic(shop_model, jaffle, {"measures": ["customer_orders.amount_paid", "customer_orders.count"],
                                        "dimensions": ["customer_orders.customers_first_name"]})
    assert_same(dollars(got), dollars(expected))


# --- composite primary key (hand-made data) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def composite(tmp_path_factory: pytest.TempPathFactory):
    import duckdb

    path = str(tmp_path_factory.mktemp("composite") / "composite.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE TABLE lines (order_id INTEGER, line_no INTEGER, amount INTEGER)")
    con.execute("INSERT INTO lines VALUES (1, 1, 10), (1, 2, 20), (2, 1, 40)")
    con.execute("CREATE TABLE line_tags (id INTEGER, order_id INTEGER, line_no INTEGER, tag VARCHAR)")
    con.execute("INSERT INTO line_tags VALUES (1, 1, 1, 'x'), (2, 1, 1, 'y'), (3, 1, 2, 'x'), "
                "(4, 2, 1, 'y'), (5, 2, 1, 'y')")
    con.close()
    wh = DuckDBWarehouse(path, pool_size=1)
    yield load_models(REPO / "tests" / "models" / "composite"), wh
    wh.close()


def test_composite_primary_key_de_duplicates_on_every_key_column(composite):
    """lines.amount by tag: x → lines (1,1)+(1,2) = 30; y → lines (1,1)+(2,1) = 50 (line (2,1) has 'y'
    twice). De-duplicating on order_id alone would give y = 70; the naive join gives y = 90."""
    model, wh = composite
    got = semantic(model, wh, {"measures": ["lines.amount", "lines.count", "line_tags.count"],
                               "dimensions": ["line_tags.tag"]})
    assert got == {("x",): (30, 2, 2), ("y",): (50, 2, 3)}
