"""The GraphQL schema executed directly (no HTTP): Cube-shaped typed queries, `load`, `meta`,
`live`, `reloadModels`, error codes and limits, over real DuckDB warehouses.

Numbers are checked three ways where it matters: typed query, generic `load` / `run_query`, and
hand-written SQL on the same tables.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from headless_bi.demo.data import generate_demo_data
from headless_bi.graphql import build_schema, make_context
from headless_bi.graphql.filters import order_pairs, where_filters
from headless_bi.runtime import Runtime, Settings
from headless_bi.semantic.loader import load_models
from headless_bi.service import run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse
from headless_bi.warehouse.files import load_files

ROOT = Path(__file__).resolve().parents[1]
TPCH_TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


# -- fixtures ------------------------------------------------------------------------------------


def _runtime(models: Path, warehouse: str, **settings: Any) -> Runtime:
    config = Settings(models=str(models), warehouse=warehouse, **settings)
    return Runtime(config, DuckDBWarehouse(warehouse, read_only=True), load_models(config.models))


@pytest.fixture(scope="module")
def tpch(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("gql_tpch") / "tpch.duckdb"
    load_files([shared_data / "tpch_sf0.1" / f"{t}.parquet" for t in TPCH_TABLES], str(path))
    runtime = _runtime(ROOT / "semantic_models" / "tpch", str(path))
    yield runtime, build_schema(runtime.model, runtime.settings)
    runtime.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    path = str(tmp_path_factory.mktemp("gql_demo") / "demo.duckdb")
    generate_demo_data(path)
    runtime = _runtime(ROOT / "semantic_models" / "demo", path)
    yield runtime, build_schema(runtime.model, runtime.settings)
    runtime.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    import duckdb

    path = str(tmp_path_factory.mktemp("gql_shop") / "shop.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE TABLE roots (id INTEGER, name VARCHAR)")
    con.execute("INSERT INTO roots VALUES (1, 'r1'), (2, 'r2')")
    con.execute("CREATE TABLE suppliers (id INTEGER, name VARCHAR)")
    con.execute("INSERT INTO suppliers VALUES (1, 'acme'), (2, 'globex')")
    con.execute(
        "CREATE TABLE items (id INTEGER, label VARCHAR, in_stock BOOLEAN, source VARCHAR, cost DOUBLE, "
        "added_at TIMESTAMP, root_id INTEGER, supplier_id INTEGER)"
    )
    con.execute(
        "INSERT INTO items VALUES "
        "(1, 'apple', true, 'farm', 1.5, '2024-03-30 23:30:00', 1, 1), "
        "(2, 'pear', false, 'farm', 2.0, '2024-03-31 00:30:00', 1, 2), "
        "(3, 'plum', true, 'import', 3.0, '2024-04-01 12:00:00', 2, 1), "
        "(4, 'fig', NULL, NULL, 4.0, NULL, 2, 2)"
    )
    con.close()
    runtime = _runtime(ROOT / "tests" / "models" / "graphql", path)
    yield runtime, build_schema(runtime.model, runtime.settings)
    runtime.close()


# -- helpers -------------------------------------------------------------------------------------


def execute(env, query: str, variables: dict | None = None, **context: Any):
    runtime, schema = env
    return asyncio.run(
        schema.execute(query, variable_values=variables, context_value=make_context(runtime, **context))
    )


def ok(env, query: str, variables: dict | None = None, **context: Any) -> dict:
    result = execute(env, query, variables, **context)
    assert not result.errors, [e.formatted for e in result.errors]
    return result.data


def error(env, query: str, variables: dict | None = None, **context: Any) -> dict:
    """The only error of the result, as sent to a client; never with a traceback."""
    result = execute(env, query, variables, **context)
    assert result.errors, result.data
    formatted = [e.formatted for e in result.errors]
    _no_traceback(formatted)
    assert len(formatted) == 1, formatted
    return formatted[0]


def _no_traceback(formatted: list[dict]) -> None:
    text = json.dumps(formatted)
    for marker in ("Traceback", 'File "', ".py", "line "):
        assert marker not in text, text


def sql(env, text: str) -> list[tuple]:
    runtime, _ = env
    table = runtime.warehouse.execute(text)
    return [tuple(row.values()) for row in table.to_pylist()]


def flat(rows: list[dict], owner: str) -> list[dict]:
    return [row[owner] for row in rows]


Q1_TYPED = """
query Q1 {
  cube(where: {lineitem: {shipdate: {beforeOrOnDate: "1998-09-02"}}},
       orderBy: {lineitem: {returnflag: asc, linestatus: asc}}) {
    lineitem {
      returnflag linestatus quantity extended_price revenue charge
      avg_quantity avg_price avg_discount count
    }
  }
}
"""
Q1_JSON = json.loads((ROOT / "semantic_models" / "tpch" / "tpch_questions.json").read_text())["Q1"]
Q1_SQL = """
SELECT l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice),
       sum(l_extendedprice * (1 - l_discount)), sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)),
       avg(l_quantity), avg(l_extendedprice), avg(l_discount), count(*)
FROM lineitem WHERE l_shipdate <= DATE '1998-09-02' GROUP BY 1, 2 ORDER BY 1, 2
"""
Q1_FIELDS = [
    "returnflag",
    "linestatus",
    "quantity",
    "extended_price",
    "revenue",
    "charge",
    "avg_quantity",
    "avg_price",
    "avg_discount",
    "count",
]


def _same_rows(got: list[list], want: list[tuple]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            if isinstance(b, str) or b is None:
                assert a == b
            else:
                assert a == pytest.approx(float(b), rel=1e-9)


# -- typed queries -------------------------------------------------------------------------------


def test_q1_typed_matches_run_query_and_sql(tpch):
    rows = flat(ok(tpch, Q1_TYPED)["cube"], "lineitem")
    want = sql(tpch, Q1_SQL)
    _same_rows([[r[f] for f in Q1_FIELDS] for r in rows], want)
    runtime, _ = tpch
    reference = run_query(runtime.model, runtime.warehouse, Q1_JSON).data
    assert [[r[f"lineitem.{f}"] for f in Q1_FIELDS] for r in reference] == [
        [r[f] for f in Q1_FIELDS] for r in rows
    ]


def test_q1_generic_load_matches_run_query(tpch):
    data = ok(
        tpch,
        """query($q: QueryInput!) { load(query: $q) {
             data total sql annotation columns { key kind title shortTitle type format } } }""",
        {
            "q": {
                **{k: v for k, v in Q1_JSON.items() if k != "order"},
                "order": [{"id": "lineitem.returnflag"}, {"id": "lineitem.linestatus", "desc": False}],
                "total": True,
            }
        },
    )["load"]
    runtime, _ = tpch
    reference = run_query(runtime.model, runtime.warehouse, {**Q1_JSON, "total": True})
    assert data["data"] == reference.data
    assert data["total"] == reference.total == 4
    assert data["sql"] == reference.sql
    assert data["annotation"] == reference.annotation
    revenue = next(c for c in data["columns"] if c["key"] == "lineitem.revenue")
    assert revenue == {
        "key": "lineitem.revenue",
        "kind": "measure",
        "title": "Line items Revenue",
        "shortTitle": "Revenue",
        "type": "number",
        "format": "currency",
    }
    _same_rows([[r[f"lineitem.{f}"] for f in Q1_FIELDS] for r in data["data"]], sql(tpch, Q1_SQL))


MULTI_TYPED = """
{
  cube(where: {customer: {mktsegment: {equals: "BUILDING"}},
               orders: {orderdate: {inDateRange: ["1995-01-01", "1995-12-31"]}}},
       orderBy: {nation: {name: asc}}) {
    nation { name }
    lineitem { revenue }
    orders { count }
  }
}
"""
MULTI_JOINS = """
FROM orders JOIN customer ON o_custkey = c_custkey JOIN nation ON c_nationkey = n_nationkey
WHERE c_mktsegment = 'BUILDING' AND o_orderdate BETWEEN DATE '1995-01-01' AND DATE '1995-12-31'
"""


def test_multi_cube_query_matches_load_and_sql(tpch):
    rows = ok(tpch, MULTI_TYPED)["cube"]
    assert len(rows) == 25
    revenue = dict(
        sql(
            tpch,
            "SELECT n_name, sum(l_extendedprice * (1 - l_discount)) "
            f"FROM lineitem JOIN ({'SELECT * ' + MULTI_JOINS}) o ON l_orderkey = o.o_orderkey GROUP BY 1",
        )
    )
    counts = dict(sql(tpch, f"SELECT n_name, count(*) {MULTI_JOINS} GROUP BY 1"))
    assert [r["nation"]["name"] for r in rows] == sorted(counts)
    for row in rows:
        name = row["nation"]["name"]
        assert row["lineitem"]["revenue"] == pytest.approx(float(revenue[name]), rel=1e-9)
        assert row["orders"]["count"] == counts[name]
    generic = ok(
        tpch,
        """{ load(query: {measures: ["lineitem.revenue", "orders.count"], dimensions: ["nation.name"],
             filters: [{member: "customer.mktsegment", operator: "equals", values: ["BUILDING"]}],
             timeDimensions: [{dimension: "orders.orderdate", dateRange: ["1995-01-01", "1995-12-31"]}],
             order: [{id: "nation.name"}]}) { data } }""",
    )["load"]["data"]
    assert [[g["nation.name"], g["lineitem.revenue"], g["orders.count"]] for g in generic] == [
        [r["nation"]["name"], r["lineitem"]["revenue"], r["orders"]["count"]] for r in rows
    ]


def test_where_with_and_or_nesting(tpch):
    typed = ok(
        tpch,
        """{ cube(where: {
               OR: [{lineitem: {shipmode: {equals: "MAIL"}}}, {lineitem: {shipmode: {startsWith: ["AIR"]}}}],
               AND: [{orders: {orderpriority: {in: ["1-URGENT", "2-HIGH"]}}},
                     {lineitem: {quantity_value: {gte: 10, lt: 20}}}]}) {
               lineitem(where: {returnflag: {notEquals: "N"}}) { count returnflag }
             } }""",
    )["cube"]
    want = dict(
        sql(
            tpch,
            "SELECT l_returnflag, count(*) FROM lineitem JOIN orders ON l_orderkey = o_orderkey "
            "WHERE (l_shipmode = 'MAIL' OR l_shipmode ILIKE 'AIR%') "
            "AND o_orderpriority IN ('1-URGENT', '2-HIGH') AND l_quantity >= 10 AND l_quantity < 20 "
            "AND l_returnflag <> 'N' GROUP BY 1",
        )
    )
    assert {r["lineitem"]["returnflag"]: r["lineitem"]["count"] for r in typed} == want
    assert len(want) == 2


def test_measure_and_dimension_filters_combine(tpch):
    rows = ok(
        tpch,
        """{ cube(where: {AND: [{lineitem: {count: {gt: 150000}}},
                                {lineitem: {linestatus: {equals: "F"}}}]}) {
               lineitem { returnflag count } } }""",
    )["cube"]
    want = sql(
        tpch,
        "SELECT l_returnflag, count(*) FROM lineitem WHERE l_linestatus = 'F' "
        "GROUP BY 1 HAVING count(*) > 150000",
    )
    assert [(r["lineitem"]["returnflag"], r["lineitem"]["count"]) for r in rows] == want


def test_where_translation_follows_cube_with_and_semantics_per_object():
    where = {
        "AND": [{"orders": {"status": {"in": ["a", "b"]}}}],
        "OR": [
            {"orders": {"status": {"equals": "x"}, "count": {"gt": "3"}}},
            {"customers": {"name": {"set": False}}},
        ],
        "orders": {"created_at": {"inDateRange": "last 7 days", "beforeDate": None}},
    }
    assert where_filters(where) == [
        {"member": "orders.status", "operator": "equals", "values": ["a", "b"]},
        {
            "or": [
                {
                    "and": [
                        {"member": "orders.status", "operator": "equals", "values": ["x"]},
                        {"member": "orders.count", "operator": "gt", "values": ["3"]},
                    ]
                },
                {"member": "customers.name", "operator": "notSet"},
            ]
        },
        {"member": "orders.created_at", "operator": "inDateRange", "values": ["last 7 days"]},
    ]
    assert order_pairs({"orders": {"count": "desc", "status": "asc"}}) == [
        ["orders.count", "desc"],
        ["orders.status", "asc"],
    ]


def test_time_dimension_with_two_granularities(tpch):
    rows = ok(
        tpch,
        """{ cube(where: {orders: {orderdate: {inDateRange: ["1995-01-01", "1996-12-31"]}}}) {
               orders { count orderdate { month year zoned { timezone month } } } } }""",
    )["cube"]
    assert len(rows) == 24
    months = [r["orders"]["orderdate"]["month"] for r in rows]
    assert months == sorted(months)  # Cube's default order: the first bucketed time, ascending
    assert months[0] == "1995-01-01T00:00:00.000Z"
    by_year: dict[str, int] = {}
    for r in rows:
        od = r["orders"]["orderdate"]
        assert od["year"] == od["month"][:4] + "-01-01T00:00:00.000Z"
        assert od["zoned"] == {"timezone": "UTC", "month": od["month"].replace("Z", "+00:00")}
        by_year[od["year"][:4]] = by_year.get(od["year"][:4], 0) + int(r["orders"]["count"])
    want = sql(
        tpch,
        "SELECT year(o_orderdate)::VARCHAR, count(*) FROM orders "
        "WHERE o_orderdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31' GROUP BY 1 ORDER BY 1",
    )
    assert sorted(by_year.items()) == want


def test_time_zone_values_and_offsets(demo):
    query = """query($tz: String) {
      cube(timezone: $tz, where: {orders: {created_at: {inDateRange: ["2024-03-30", "2024-04-01"]}}}) {
        orders { count created_at { day zoned { timezone day } } } } }"""
    rows = ok(demo, query, {"tz": "Europe/Berlin"})["cube"]
    days = [r["orders"]["created_at"] for r in rows]
    assert [d["zoned"]["day"] for d in days] == [
        "2024-03-30T00:00:00.000+01:00",
        "2024-03-31T00:00:00.000+01:00",  # DST starts at 02:00 that day
        "2024-04-01T00:00:00.000+02:00",
    ]
    assert [d["day"] for d in days] == [
        "2024-03-29T23:00:00.000Z",
        "2024-03-30T23:00:00.000Z",
        "2024-03-31T22:00:00.000Z",
    ]
    for d in days:
        assert d["zoned"]["timezone"] == "Europe/Berlin"
        assert datetime.fromisoformat(d["zoned"]["day"]) == datetime.fromisoformat(d["day"])
    generic = ok(
        demo,
        """{ load(query: {measures: ["orders.count"], timezone: "Europe/Berlin",
             timeDimensions: [{dimension: "orders.created_at", granularity: "day",
                               dateRange: ["2024-03-30", "2024-04-01"]}]}) { data } }""",
    )["load"]["data"]
    assert [g["orders.count"] for g in generic] == [r["orders"]["count"] for r in rows]
    assert [g["orders.created_at.day"][:10] for g in generic] == [d["zoned"]["day"][:10] for d in days]


def test_plain_time_value_is_the_stored_instant(shop):
    rows = ok(
        shop,
        """{ cube(timezone: "Europe/Berlin", orderBy: {items: {id: asc}}) {
               items { id added_at { value hour zoned { value hour } } } } }""",
    )["cube"]
    first = rows[0]["items"]["added_at"]
    assert first["value"] == "2024-03-30T23:30:00.000Z"  # stored times are UTC instants
    assert first["zoned"]["value"] == "2024-03-31T00:30:00.000+01:00"
    assert first["hour"] == "2024-03-30T23:00:00.000Z"
    assert first["zoned"]["hour"] == "2024-03-31T00:00:00.000+01:00"
    assert rows[3]["items"]["added_at"] == {
        "value": None,
        "hour": None,
        "zoned": {"value": None, "hour": None},
    }


def test_ordering_literal_keeps_written_order_and_variables_work(tpch):
    query = """query($dir: OrderBy) { cube(orderBy: {lineitem: {linestatus: asc, returnflag: $dir}}) {
                 lineitem { returnflag linestatus count } } }"""
    rows = flat(ok(tpch, query, {"dir": "desc"})["cube"], "lineitem")
    assert [(r["linestatus"], r["returnflag"]) for r in rows] == [
        ("F", "R"),
        ("F", "N"),
        ("F", "A"),
        ("O", "N"),
    ]
    by_count = flat(
        ok(tpch, "{ cube { lineitem(orderBy: {count: desc}) { returnflag count } } }")["cube"], "lineitem"
    )
    counts = [r["count"] for r in by_count]
    assert counts == sorted(counts, reverse=True)


def test_limit_offset_and_fragments_and_directives(tpch):
    query = """query($skip: Boolean!) {
      cube(limit: 2, offset: 1, orderBy: {nation: {name: asc}}) {
        nation { ...N }
        ... on Result { region { name @skip(if: $skip) } }
      } }
      fragment N on NationMembers { name count }"""
    rows = ok(tpch, query, {"skip": True})["cube"]
    assert [r["nation"]["name"] for r in rows] == ["ARGENTINA", "BRAZIL"]
    assert rows[0]["region"] == {}
    assert "name" not in rows[0]["region"]


def test_segments_argument(tpch):
    want = sql(
        tpch,
        "SELECT count(*) FROM lineitem WHERE l_returnflag = 'R' "
        "AND l_commitdate < l_receiptdate AND l_shipdate < l_commitdate",
    )[0][0]
    rows = ok(tpch, "{ cube { lineitem(segments: [returned, late_delivery]) { count } } }")["cube"]
    assert rows[0]["lineitem"]["count"] == want
    query = "query($s: [LineitemSegment!]) { cube { lineitem(segments: $s) { count } } }"
    rows = ok(tpch, query, {"s": ["returned", "late_delivery"]})["cube"]
    assert rows[0]["lineitem"]["count"] == want


def test_arguments_from_variables(tpch):
    literal = ok(tpch, MULTI_TYPED)["cube"]
    query = """query($w: RootWhereInput, $o: RootOrderByInput, $n: NationWhereInput) {
      cube(where: $w, orderBy: $o) { nation(where: $n) { name } lineitem { revenue } orders { count } } }"""
    variables = {
        "w": {
            "customer": {"mktsegment": {"equals": "BUILDING"}},
            "orders": {"orderdate": {"inDateRange": ["1995-01-01", "1995-12-31"]}},
        },
        "o": {"nation": {"name": "asc"}},
        "n": {"name": {"notIn": ["ALGERIA"]}},
    }
    rows = ok(tpch, query, variables)["cube"]
    assert rows == [r for r in literal if r["nation"]["name"] != "ALGERIA"]


def test_boolean_filter_hidden_members_views_and_keyword_names(shop):
    rows = ok(
        shop,
        """{ cube(orderBy: {items: {label: asc}}) {
               items(where: {in_stock: {equals: true}}) { label from in_stock count } } }""",
    )["cube"]
    assert [r["items"] for r in rows] == [
        {"label": "apple", "from": "farm", "in_stock": True, "count": 1},
        {"label": "plum", "from": "import", "in_stock": True, "count": 1},
    ]
    view = ok(
        shop, "{ cube(orderBy: {catalog: {suppliers_name: asc}}) { catalog { suppliers_name count } } }"
    )
    assert [r["catalog"] for r in view["cube"]] == [
        {"suppliers_name": "acme", "count": 2},
        {"suppliers_name": "globex", "count": 2},
    ]
    assert error(shop, "{ cube { items { cost } } }")["extensions"]["code"] == "BAD_QUERY"
    assert error(shop, "{ cube { suppliers { name } } }")["extensions"]["code"] == "BAD_QUERY"
    for name in ("items.total_cost", "catalog.cost"):
        hidden = error(shop, "{ load(query: {measures: [$m]}) { data } }".replace("$m", json.dumps(name)))
        assert hidden["extensions"]["code"] == "UNKNOWN_MEMBER"
        assert name in hidden["message"]
    root = ok(shop, "{ cube { root { name } } }")["cube"]
    assert sorted(r["root"]["name"] for r in root) == ["r1", "r2"]


# -- catalog and introspection -----------------------------------------------------------------


def test_meta_lists_members_with_descriptions_and_synonyms(tpch):
    cubes = ok(
        tpch,
        """{ meta { version cubes { name type title description synonyms connectedComponent
             members { name kind type aggType title shortTitle description format synonyms primaryKey
                       granularities }
             measures { name } segments { name } } } }""",
    )["meta"]["cubes"]
    lineitem = next(c for c in cubes if c["name"] == "lineitem")
    assert lineitem["type"] == "cube"
    assert lineitem["description"].startswith("One row per order line")
    assert lineitem["synonyms"] == ["order lines", "line items", "sales lines"]
    members = {m["name"]: m for m in lineitem["members"]}
    assert members["lineitem.revenue"] == {
        "name": "lineitem.revenue",
        "kind": "measure",
        "type": "number",
        "aggType": "sum",
        "title": "Line items Revenue",
        "shortTitle": "Revenue",
        "description": "Extended price after discount.",
        "format": "currency",
        "synonyms": ["sales", "net revenue", "turnover"],
        "primaryKey": False,
        "granularities": [],
    }
    assert members["lineitem.orderkey"]["primaryKey"] is True
    assert members["lineitem.shipdate"]["granularities"][:3] == ["second", "minute", "hour"]
    assert members["lineitem.returned"]["kind"] == "segment"
    assert {s["name"] for s in lineitem["segments"]} == {"lineitem.returned", "lineitem.late_delivery"}
    assert len({c["connectedComponent"] for c in cubes}) == 1  # TPC-H is one joined graph


def test_meta_hides_private_cubes_and_members(shop):
    cubes = ok(shop, "{ meta { cubes { name type members { name } } } }")["meta"]["cubes"]
    names = {c["name"]: [m["name"] for m in c["members"]] for c in cubes}
    assert set(names) == {"items", "root", "catalog"}
    assert "items.cost" not in names["items"] and "items.total_cost" not in names["items"]
    assert names["catalog"] == ["catalog.label", "catalog.suppliers_name", "catalog.count"]


def test_introspection_shows_model_descriptions(tpch):
    data = ok(
        tpch,
        """{ t: __type(name: "LineitemMembers") { description fields { name description type { name } } }
             r: __type(name: "Result") { fields { name description args { name } } }
             f: __type(name: "LineitemWhereInput") { inputFields { name type { name } } } }""",
    )
    assert data["t"]["description"].startswith("Line items: One row per order line")
    assert "Synonyms: order lines" in data["t"]["description"]
    fields = {f["name"]: f for f in data["t"]["fields"]}
    assert fields["revenue"]["description"] == (
        "Revenue: Extended price after discount. Format: currency. Synonyms: sales, net revenue, turnover."
    )
    assert fields["revenue"]["type"]["name"] == "Float"
    assert fields["shipdate"]["type"]["name"] == "TimeDimension"
    # title, then the model's description: the codes are explained where a client looks for them
    assert fields["returnflag"]["description"].startswith("Return Flag: ")
    assert "R = returned" in fields["returnflag"]["description"]
    lineitem = next(f for f in data["r"]["fields"] if f["name"] == "lineitem")
    assert [a["name"] for a in lineitem["args"]] == ["where", "orderBy", "segments"]
    inputs = {f["name"]: f["type"]["name"] for f in data["f"]["inputFields"]}
    assert inputs["shipdate"] == "DateTimeFilter"
    assert inputs["revenue"] == "FloatFilter"
    assert inputs["returnflag"] == "StringFilter"


# -- errors and limits ---------------------------------------------------------------------------


def test_unknown_member_in_load(tpch):
    found = error(tpch, '{ load(query: {measures: ["lineitem.revenu"]}) { data } }')
    assert found["extensions"]["code"] == "UNKNOWN_MEMBER"
    assert "'lineitem.revenu'" in found["message"] and "lineitem.revenue" in found["message"]
    assert found["path"] == ["load"]


def test_bad_value_names_member_and_value(tpch):
    found = error(
        tpch, '{ cube(where: {orders: {orderdate: {beforeDate: "1995-13-45"}}}) { orders { count } } }'
    )
    assert found["extensions"]["code"] == "BAD_QUERY"
    assert "orders.orderdate" in found["message"] and "1995-13-45" in found["message"]
    bad_tz = error(tpch, '{ cube(timezone: "Mars/Olympus") { orders { count } } }')
    assert bad_tz["extensions"]["code"] == "BAD_QUERY" and "Mars/Olympus" in bad_tz["message"]
    bad_filter = error(
        tpch,
        """{ load(query: {measures: ["orders.count"],
                          filters: [{member: "orders.count", operator: "gt"}]}) { data } }""",
    )
    assert bad_filter["extensions"]["code"] == "BAD_QUERY" and "orders.count" in bad_filter["message"]


def test_graphql_validation_errors_are_bad_query(tpch):
    found = error(tpch, "{ cube { lineitem { nope } } }")
    assert found["extensions"]["code"] == "BAD_QUERY"
    assert "nope" in found["message"]
    syntax = error(tpch, "{ cube { ")
    assert syntax["extensions"]["code"] == "BAD_QUERY"


def test_row_limit_exceeded(tpch):
    found = error(tpch, "{ cube(limit: 1000000) { lineitem { count } } }")
    assert found["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert "1000000" in found["message"]


def test_depth_and_complexity_limits(tpch):
    runtime, _ = tpch
    strict = (
        runtime,
        # a default of 1,000 rows keeps a typed cube field at 10 per selected field
        build_schema(
            runtime.model, replace(runtime.settings, max_depth=3, max_complexity=300, default_limit=1000)
        ),
    )
    deep = error(strict, "{ cube { orders { orderdate { zoned { day } } } } }")
    assert deep["extensions"]["code"] == "LIMIT_EXCEEDED" and "depth" in deep["message"]
    costly = error(
        strict, "{ a: cube { orders { count } } b: cube { orders { count } } c: cube { orders { count } } }"
    )
    assert costly["extensions"]["code"] == "LIMIT_EXCEEDED" and "300" in costly["message"]
    assert ok(strict, "{ cube { orders { count } } }")["cube"][0]["orders"]["count"] == 150000
    # Introspection is not depth-limited and costs a quarter of the limit: GraphiQL's query keeps
    # working, a document of many aliased introspections does not (it would hold the event loop).
    introspection = "__schema { types { name fields { name type { name ofType { name } } } } }"
    assert ok(strict, "{ " + introspection + " }")
    aliased = error(strict, "{ " + " ".join(f"a{i}: {introspection}" for i in range(5)) + " }")
    assert aliased["extensions"]["code"] == "LIMIT_EXCEEDED"


def test_internal_errors_are_masked_and_logged(tpch, caplog):
    runtime, schema = tpch

    class Broken:
        model = runtime.model
        settings = runtime.settings

        async def run(self, query: dict, **_: Any) -> Any:
            raise RuntimeError("secret connection string postgres://u:p@h/db")

    with caplog.at_level("ERROR", logger="headless_bi.graphql"):
        found = error((Broken(), schema), "{ cube { orders { count } } }")
    assert found["extensions"] == {"code": "INTERNAL"}
    assert "secret" not in found["message"]
    assert "secret connection string" in caplog.text  # the details stay in the server log


def test_sql_only_for_roles_allowed(tpch):
    query = '{ load(query: {measures: ["orders.count"]}) { sql data } }'
    assert "FROM orders" in ok(tpch, query)["load"]["sql"]
    hidden = ok(tpch, query, can_see_sql=False)["load"]
    assert hidden["sql"] is None and hidden["data"] == [{"orders.count": 150000}]


# -- live and reload -----------------------------------------------------------------------------


@dataclass
class FakeUpdate:
    data: list[dict]
    refreshed_at: datetime


class FakeHub:
    """The live hub's contract: `subscribe(query, interval_s, security)` → async iterator."""

    def __init__(self, updates: int = 2):
        self.calls: list[tuple] = []
        self.updates = updates

    async def subscribe(self, query: dict, interval_s: float, key: object):
        self.calls.append((query, interval_s, key))
        for i in range(self.updates):
            yield FakeUpdate([{"orders.count": i}], datetime(2024, 1, 1, 12, 0, i, tzinfo=UTC))


def _stream(env, query: str, variables: dict | None = None, **context: Any) -> list:
    runtime, schema = env

    async def collect() -> list:
        out = []
        stream = await schema.subscribe(query, variables, make_context(runtime, **context))
        async for result in stream:
            out.append(result)
        return out

    return asyncio.run(collect())


def test_live_subscription_delegates_to_hub(tpch, monkeypatch):
    runtime, _ = tpch
    hub = FakeHub()
    monkeypatch.setattr(runtime, "live", hub, raising=False)
    results = _stream(
        tpch,
        """subscription($q: QueryInput!) { live(query: $q, intervalSeconds: 5) { data refreshedAt } }""",
        {
            "q": {
                "measures": ["orders.count"],
                "timeDimensions": [{"dimension": "orders.orderdate", "dateRange": "last 7 days"}],
            }
        },
    )
    assert [r.errors for r in results] == [None, None]
    assert [r.data["live"] for r in results] == [
        {"data": [{"orders.count": 0}], "refreshedAt": "2024-01-01T12:00:00.000Z"},
        {"data": [{"orders.count": 1}], "refreshedAt": "2024-01-01T12:00:01.000Z"},
    ]
    query, interval, key = hub.calls[0]
    assert query == {
        "measures": ["orders.count"],
        "timeDimensions": [{"dimension": "orders.orderdate", "dateRange": ["last 7 days"]}],
    }
    assert interval == 5.0 and key is None  # no security context: the operator's own query


def test_live_rejects_bad_queries_before_subscribing(tpch, monkeypatch):
    runtime, _ = tpch
    hub = FakeHub()
    monkeypatch.setattr(runtime, "live", hub, raising=False)
    unknown = _stream(tpch, 'subscription { live(query: {measures: ["orders.nope"]}) { data } }')
    assert unknown[0].errors[0].formatted["extensions"]["code"] == "UNKNOWN_MEMBER"
    too_fast = _stream(
        tpch, 'subscription { live(query: {measures: ["orders.count"]}, intervalSeconds: 0) { data } }'
    )
    assert too_fast[0].errors[0].formatted["extensions"]["code"] == "BAD_QUERY"
    _no_traceback([r.errors[0].formatted for r in unknown + too_fast])
    assert hub.calls == []


def test_reload_models_mutation(tpch, monkeypatch):
    runtime, _ = tpch
    data = ok(tpch, "mutation { reloadModels { version cubes views } }")["reloadModels"]
    assert data["version"] == runtime.model.version
    assert "lineitem" in data["cubes"] and data["views"] == []
    denied = error(tpch, "mutation { reloadModels { version } }", is_admin=False)
    assert denied["extensions"]["code"] == "FORBIDDEN"


# -- building ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "models",
    ["semantic_models/demo", "semantic_models/jaffle_shop", "tests/models/jaffle", "semantic_models/tpch"],
)
def test_models_build_schemas(models):
    model = load_models(ROOT / models)
    started = time.perf_counter()
    schema = build_schema(model, Settings())
    assert time.perf_counter() - started < 1.0
    assert build_schema(model, Settings()) is schema  # cached per model version
    text = schema.as_str()
    assert "type Result" in text and "input RootWhereInput" in text
    assert "scalar DateTime" in text


def test_demo_typed_query_runs(demo):
    rows = ok(
        demo,
        """{ cube(limit: 3, orderBy: {sales: {revenue: desc}}) {
               sales(where: {is_online: {equals: true}}) { region revenue created_at { year } } } }""",
    )["cube"]
    assert len(rows) == 3
    revenues = [r["sales"]["revenue"] for r in rows]
    assert revenues == sorted(revenues, reverse=True)


def test_typed_rows_times_fields_count_toward_the_cost(tpch):
    """50,000 typed rows x 13 values would hold the event loop for seconds: refused before it runs."""
    big = (
        "{ cube(ungrouped: true, limit: 50000) { lineitem { orderkey linenumber returnflag linestatus "
        "shipmode revenue shipdate { value day zoned { value day } } } } }"
    )
    assert error(tpch, big)["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert ok(tpch, "{ cube(limit: 50000) { lineitem { returnflag revenue } } }")["cube"]
