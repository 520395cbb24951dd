"""Cube behaviours on a tiny hand-checked data set: rolling windows, date operators, views' roots,
camelCase keys, private members, measure aliases and members that read other cubes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import pytest

from headless_bi.errors import HeadlessBIError, UnknownMemberError
from headless_bi.semantic.loader import load_models
from headless_bi.service import run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse

MODEL = """\
cubes:
  - name: customers
    sqlTable: customers            # camelCase keys, as Cube's YAML allows
    dimensions:
      - {name: id, sql: id, type: number, primaryKey: true}
      - {name: name, sql: name, type: string}
      - {name: secret, sql: name, type: string, public: false}
    measures:
      - {name: count, type: count}
  - name: orders
    sql_table: orders
    joins:
      - {name: customers, relationship: many_to_one, sql: "{CUBE}.customer_id = {customers.id}"}
    dimensions:
      - {name: id, sql: id, type: number, primary_key: true}
      - {name: created_at, sql: created_at, type: time}
      - {name: customer_name, sql: "{customers.name}", type: string}
    measures:
      - {name: count, type: count}
      - {name: amount, sql: amount, type: sum}
      - {name: orders, type: number, sql: "{CUBE.count}"}
      - name: running_amount
        sql: amount
        type: sum
        rolling_window: {trailing: unbounded}
      - name: previous_2_days
        sql: amount
        type: sum
        rollingWindow: {trailing: 2 day, offset: start}
      - name: next_2_days
        sql: amount
        type: sum
        rolling_window: {leading: 2 day}
  - name: items
    sql_table: items
    joins:
      - {name: orders, relationship: many_to_one, sql: "{CUBE}.order_id = {orders.id}"}
      - {name: customers, relationship: many_to_one, sql: "{CUBE}.buyer_id = {customers.id}"}
    dimensions:
      - {name: id, sql: id, type: number, primary_key: true}
    measures:
      - {name: price, sql: price, type: sum}
  - name: hidden
    sql_table: customers
    public: false
    dimensions:
      - {name: id, sql: id, type: number, primary_key: true}
views:
  - name: shop
    cubes:
      - {join_path: orders, includes: [count, amount]}
      - {join_path: orders.customers, includes: [name, count, secret], prefix: true}
  - name: people
    cubes:
      - {join_path: hidden, includes: "*"}
"""

# Orders: 1 and 2 on 03-01 (alice), 3 on 03-02 late evening (bob), 4 on 03-05 (alice); carol never orders.
SETUP = """
CREATE TABLE customers AS SELECT * FROM (VALUES (1, 'alice'), (2, 'bob'), (3, 'carol')) t(id, name);
CREATE TABLE orders AS SELECT * FROM (VALUES
  (1, 1, TIMESTAMP '2024-03-01 09:00', 10.0), (2, 1, TIMESTAMP '2024-03-01 18:00', 20.0),
  (3, 2, TIMESTAMP '2024-03-02 23:30', 30.0), (4, 1, TIMESTAMP '2024-03-05 12:00', 40.0)
) t(id, customer_id, created_at, amount);
-- item buyers differ from order customers on purpose: only the order's customer is the orders' one
CREATE TABLE items AS SELECT * FROM (VALUES (1, 1, 2, 5.0), (2, 3, 3, 7.0), (3, 4, 3, 11.0))
  t(id, order_id, buyer_id, price);
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("shop")
    (folder / "model.yml").write_text(textwrap.dedent(MODEL))
    path = str(folder / "shop.duckdb")
    con = duckdb.connect(path)
    con.execute(SETUP)
    con.close()
    warehouse = DuckDBWarehouse(path)
    yield load_models(folder), warehouse
    warehouse.close()


def rows(shop, query: dict) -> list[dict]:
    model, warehouse = shop
    return run_query(model, warehouse, query).data


def by_day(measure: str, date_range: list[str]) -> list:
    return {
        "measures": [measure],
        "timeDimensions": [{"dimension": "orders.created_at", "granularity": "day", "dateRange": date_range}],
    }


def test_running_total_keeps_empty_buckets_and_history(shop):
    got = rows(shop, by_day("orders.running_amount", ["2024-03-02", "2024-03-05"]))
    assert [(r["orders.created_at.day"][:10], r["orders.running_amount"]) for r in got] == [
        ("2024-03-02", 60),
        ("2024-03-03", 60),
        ("2024-03-04", 60),
        ("2024-03-05", 100),
    ]


def test_trailing_window_with_offset_start_excludes_the_bucket(shop):
    got = rows(shop, by_day("orders.previous_2_days", ["2024-03-01", "2024-03-04"]))
    # window [day - 2, day): 03-03 sees 03-01 and 03-02
    assert [r["orders.previous_2_days"] for r in got] == [None, 30, 60, 30]


def test_leading_window_starts_after_the_bucket(shop):
    got = rows(shop, by_day("orders.next_2_days", ["2024-03-01", "2024-03-04"]))
    # offset end, trailing unset: window [day + 1, day + 3)
    assert [r["orders.next_2_days"] for r in got] == [30, None, 40, 40]


def test_rolling_window_without_granularity_covers_the_range_end(shop):
    query = {
        "measures": ["orders.running_amount"],
        "timeDimensions": [{"dimension": "orders.created_at", "dateRange": ["2024-03-02", "2024-03-03"]}],
    }
    assert rows(shop, query) == [{"orders.running_amount": 60}]


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("beforeDate", 2),
        ("beforeOrOnDate", 2),
        ("afterDate", 2),
        ("afterOrOnDate", 2),
    ],
)
def test_date_operators_take_the_whole_day(shop, operator, expected):
    value = {
        "beforeDate": "2024-03-02",
        "beforeOrOnDate": "2024-03-01",
        "afterDate": "2024-03-01",
        "afterOrOnDate": "2024-03-02",
    }[operator]
    query = {
        "measures": ["orders.count"],
        "filters": [{"member": "orders.created_at", "operator": operator, "values": [value]}],
    }
    assert rows(shop, query) == [{"orders.count": expected}]


def test_view_counts_only_rows_of_its_root(shop):
    # Cube joins a view from its first cube: carol, who never ordered, is not in `shop`
    assert rows(shop, {"measures": ["shop.customers_count"]}) == [{"shop.customers_count": 2}]
    assert rows(shop, {"measures": ["customers.count"]}) == [{"customers.count": 3}]


def test_member_reading_another_cube_joins_through_its_own_cube(shop):
    got = rows(
        shop,
        {
            "measures": ["items.price"],
            "dimensions": ["orders.customer_name"],
            "order": {"orders.customer_name": "asc"},
        },
    )
    # through orders: item 1 → order 1 (alice), items 2-3 → orders 3 (bob), 4 (alice); not via buyer_id
    assert got == [
        {"orders.customer_name": "alice", "items.price": 16},
        {"orders.customer_name": "bob", "items.price": 7},
    ]


def test_number_measure_that_aliases_a_measure(shop):
    assert rows(shop, {"measures": ["orders.orders", "orders.count"]}) == [
        {"orders.orders": 4, "orders.count": 4}
    ]


def test_private_members_are_not_queryable_but_views_may_expose_private_cubes(shop):
    with pytest.raises(UnknownMemberError):
        rows(shop, {"dimensions": ["customers.secret"]})
    with pytest.raises(UnknownMemberError):
        rows(shop, {"dimensions": ["shop.customers_secret"]})  # a private member stays private
    with pytest.raises(UnknownMemberError):
        rows(shop, {"dimensions": ["hidden.id"]})
    assert len(rows(shop, {"dimensions": ["people.id"]})) == 3  # the cube is private, the view is not


def test_dimension_with_granularity_suffix(shop):
    got = rows(shop, {"measures": ["orders.count"], "dimensions": ["orders.created_at.month"]})
    assert got[0]["orders.created_at.month"] == "2024-03-01T00:00:00.000" and got[0]["orders.count"] == 4


@pytest.mark.parametrize("flag", ["total", "ungrouped"])
def test_flags_must_be_booleans(shop, flag):
    with pytest.raises(HeadlessBIError, match=flag):
        rows(shop, {"measures": ["orders.count"], flag: "false"})


def test_camel_case_keys_load(shop):
    model, _ = shop
    assert model.cubes["customers"].primary_key[0].name == "id"
    assert model.cubes["orders"].measures["previous_2_days"].rolling_window.offset == "start"


def test_unreadable_and_multi_statement_models_are_located(tmp_path: Path):
    from headless_bi.semantic.loader import check_models

    (tmp_path / "latin1.yml").write_bytes("cubes: []  # caf\xe9".encode("latin-1"))
    (tmp_path / "bad.yml").write_text(
        textwrap.dedent("""\
        cubes:
          - name: a
            sql_table: t
            dimensions:
              - {name: x, sql: "status; DROP TABLE t", type: string}
        """)
    )
    _, issues = check_models(tmp_path)
    messages = {Path(i.file).name: i.message for i in issues}
    assert "UTF-8" in messages["latin1.yml"]
    assert "single expression" in messages["bad.yml"]


def test_ordering_by_a_time_asked_both_plain_and_bucketed_orders_the_plain_value(shop):
    query = {
        "measures": ["orders.count"],
        "dimensions": ["orders.created_at"],
        "timeDimensions": [{"dimension": "orders.created_at", "granularity": "month"}],
        "order": {"orders.created_at": "desc"},
        "limit": 2,
    }
    got = [r["orders.created_at"] for r in rows(shop, query)]
    assert got == ["2024-03-05T12:00:00.000", "2024-03-02T23:30:00.000"]
