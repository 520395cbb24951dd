"""Model checking: every problem is reported with file, line and member, all at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlglot

from headless_bi.cli import main
from headless_bi.errors import ModelError
from headless_bi.semantic.compiler import compile_query
from headless_bi.semantic.loader import check_models, load_models

ROOT = Path(__file__).resolve().parents[1]

BROKEN = """\
cubes:
  - name: orders
    sql_table: orders
    joins:
      - name: customerz
        relationship: many_to_one
        sql: "{CUBE}.customer_id = {customerz}.id"
    dimensions:
      - name: id
        sql: id
        type: number
        primary_key: true
      - name: status
        sql: "{CUBE}.status"
        type: strng
      - name: loop_a
        sql: "{loop_b} + 1"
        type: number
      - name: loop_b
        sql: "{loop_a} + 1"
        type: number
    measures:
      - name: count
        type: count
        formt: currency
      - name: total
        sql: "{amont}"
        type: sum
      - name: ratio
        sql: "{total} / {cnt}"
        type: number

  - name: customers
    sql_table: customers
    joins:
      - name: orders
        relationship: one_to_many
        sql: "{CUBE}.id = {orders}.customer_id"
    dimensions:
      - name: name
        sql: name
        type: string
    measures:
      - name: count
        type: count
"""


def _write(tmp_path: Path, text: str, name: str = "model.yml") -> Path:
    (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def test_every_problem_is_located(tmp_path):
    _, issues = check_models(_write(tmp_path, BROKEN))
    errors = [i for i in issues if i.severity == "error"]
    by_line = {(i.line, i.member): i.message for i in errors}
    assert all(i.file.endswith("model.yml") for i in errors)
    assert "unallowed value strng" in by_line[(15, "orders.status")]
    assert (
        "unknown key 'formt'" in by_line[(25, "orders.count")] and "format" in by_line[(25, "orders.count")]
    )
    # shape errors stop the file before references are checked; fix them and look again
    fixed = BROKEN.replace("type: strng", "type: string").replace("        formt: currency\n", "")
    _, issues = check_models(_write(tmp_path, fixed))
    messages = {(i.line, i.member): i.message for i in issues if i.severity == "error"}
    assert "unknown cube 'customerz'" in messages[(5, "orders.joins.customerz")] or any(
        "customerz" in m and "customers" in m for m in messages.values()
    )
    cycle = [m for (line, member), m in messages.items() if "circular reference" in m]
    assert cycle and "orders.loop_a" in cycle[0] and "orders.loop_b" in cycle[0]
    # (one line shorter now that 'formt' is gone)
    assert "unknown member 'amont'" in messages[(25, "orders.total")]
    assert "unknown member 'cnt'" in messages[(28, "orders.ratio")]
    assert "Did you mean 'count'" in messages[(28, "orders.ratio")]
    pk = [m for (line, member), m in messages.items() if member == "customers" and "primary_key" in m]
    assert pk and line_of(issues, "customers") == 32


def line_of(issues, member: str) -> int | None:
    return next(i.line for i in issues if i.member == member)


def test_yaml_syntax_error_has_a_line(tmp_path):
    _, issues = check_models(_write(tmp_path, "cubes:\n  - name: a\n    sql_table: [oops\n"))
    assert len(issues) == 1 and issues[0].line is not None and "invalid YAML" in issues[0].message


def test_load_raises_with_all_issues(tmp_path):
    with pytest.raises(ModelError) as info:
        load_models(_write(tmp_path, BROKEN))
    assert len(info.value.issues) >= 2


def test_validate_cli_lists_everything(tmp_path, capsys):
    code = main(["validate", "--models", str(_write(tmp_path, BROKEN))])
    err = capsys.readouterr().err
    assert code == 2
    assert "model.yml:15" in err and "model.yml:25" in err


@pytest.mark.parametrize("name", ["demo", "tpch", "jaffle_shop"])
def test_shipped_models_load_without_errors(name):
    model, issues = check_models(ROOT / "semantic_models" / name)
    assert [i for i in issues if i.severity == "error"] == []
    assert model is not None and model.cubes


def test_views_prefix_alias_and_join_path():
    model = load_models(ROOT / "semantic_models" / "jaffle_shop")
    view = model.views["customer_orders"]
    assert {"count", "status", "customers_first_name", "customers_count", "amount_paid"} <= set(view.members)
    assert view.members["customers_first_name"].join_path == ("orders", "customers")
    assert view.members["amount_paid"].target.path == "payments.amount"


def test_ambiguous_join_path_is_a_warning_and_a_query_error(tmp_path):
    text = """\
    cubes:
      - name: a
        sql_table: a
        joins:
          - {name: b, relationship: many_to_one, sql: "{CUBE}.b_id = {b}.id"}
          - {name: c, relationship: many_to_one, sql: "{CUBE}.c_id = {c}.id"}
        dimensions: [{name: id, sql: id, type: number, primary_key: true}]
        measures: [{name: count, type: count}]
      - name: b
        sql_table: b
        joins: [{name: d, relationship: many_to_one, sql: "{CUBE}.d_id = {d}.id"}]
        dimensions: [{name: id, sql: id, type: number, primary_key: true}]
      - name: c
        sql_table: c
        joins: [{name: d, relationship: many_to_one, sql: "{CUBE}.d_id = {d}.id"}]
        dimensions: [{name: id, sql: id, type: number, primary_key: true}]
      - name: d
        sql_table: d
        dimensions:
          - {name: id, sql: id, type: number, primary_key: true}
          - {name: name, sql: name, type: string}
    views:
      - name: a_via_b
        cubes:
          - {join_path: a, includes: [count]}
          - {join_path: a.b.d, includes: [name], prefix: true}
    """
    model, issues = check_models(_write(tmp_path, text))
    warnings = [i for i in issues if i.severity == "warning"]
    # a → d is pinned by the view, b → c (via a or via d) is not
    assert not any("from 'a' to 'd'" in w.message for w in warnings)
    assert any("ambiguous join paths from 'b' to 'c'" in w.message for w in warnings)
    from headless_bi.errors import QueryError

    with pytest.raises(QueryError, match="ambiguous join path"):
        compile_query(model, {"measures": ["a.count"], "dimensions": ["d.name"]})
    sql = compile_query(model, {"measures": ["a_via_b.count"], "dimensions": ["a_via_b.d_name"]}).sql
    assert '"b"' in sql and '"c"' not in sql


DIALECT_QUERIES = [
    {
        "measures": ["customer.balance", "orders.total_price", "lineitem.revenue"],
        "dimensions": ["nation.name"],
        "filters": [{"member": "customer.name", "operator": "contains", "values": ["0_1%"]}],
    },
    {"measures": ["customer.balance"], "dimensions": ["lineitem.shipmode"], "limit": 5, "offset": 5},
    {
        "measures": ["orders.count"],
        "timezone": "America/New_York",
        "timeDimensions": [
            {"dimension": "orders.orderdate", "granularity": "week", "dateRange": "last quarter"}
        ],
    },
    {
        "measures": ["lineitem.revenue_running_total"],
        "timeDimensions": [
            {
                "dimension": "lineitem.shipdate",
                "granularity": "month",
                "dateRange": ["1995-01-01", "1995-06-30"],
            }
        ],
    },
    {
        "measures": ["lineitem.promo_revenue_share"],
        "filters": [{"member": "lineitem.revenue", "operator": "gt", "values": [1000]}],
        "dimensions": ["part.brand"],
    },
]


@pytest.mark.parametrize(
    "dialect", ["duckdb", "postgres", "snowflake", "bigquery", "trino", "presto", "spark"]
)
def test_every_dialect_compiles_and_parses(dialect):
    model = load_models(ROOT / "semantic_models" / "tpch")
    for query in DIALECT_QUERIES:
        sql = compile_query(model, query, dialect=dialect).sql
        tree = sqlglot.parse_one(sql, dialect=dialect)
        assert tree is not None and tree.find(sqlglot.exp.Select) is not None
