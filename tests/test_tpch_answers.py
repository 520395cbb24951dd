"""TPC-H questions asked as semantic queries, checked against the official sf0.1 answers."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest

from headless_bi.semantic.loader import load_models
from headless_bi.service import run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse
from headless_bi.warehouse.files import load_files

MODELS = Path(__file__).resolve().parents[1] / "semantic_models" / "tpch"
# The TPC-H questions as semantic queries; the benchmarks ask the same ones.
QUESTIONS = json.loads((MODELS / "tpch_questions.json").read_text())
TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


@pytest.fixture(scope="session")
def tpch(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = shared_data / "tpch_sf0.1"
    path = tmp_path_factory.mktemp("tpch") / "tpch.duckdb"
    load_files([folder / f"{t}.parquet" for t in TABLES], str(path))
    warehouse = DuckDBWarehouse(str(path))
    yield load_models(MODELS), warehouse, _answers(folder / "tpch_answers_sf0.1.csv")
    warehouse.close()


def _answers(path: Path) -> dict[int, list[dict[str, str]]]:
    out = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            lines = row["answer"].splitlines()
            header = lines[0].split("|")
            out[int(row["query_nr"])] = [
                dict(zip(header, line.split("|"), strict=True)) for line in lines[1:]
            ]
    return out


def _same(got: object, expected: str) -> None:
    """Exact for decimals and integers; 1e-12 relative for the answers' floating averages."""
    if isinstance(got, str):
        assert got == expected or got.startswith(expected + "T00:00:00"), (got, expected)
    elif isinstance(got, int):
        assert got == int(expected)
    else:
        assert got == pytest.approx(float(Decimal(expected)), rel=1e-12), (got, expected)


def _check(rows: list[dict], expected: list[dict[str, str]], columns: dict[str, str]) -> None:
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        for answer_column, key in columns.items():
            _same(got[key], want[answer_column])


def test_q1_pricing_summary(tpch):
    model, warehouse, answers = tpch
    query = QUESTIONS["Q1"]
    rows = run_query(model, warehouse, query).data
    _check(
        rows,
        answers[1],
        {
            "l_returnflag": "lineitem.returnflag",
            "l_linestatus": "lineitem.linestatus",
            "sum_qty": "lineitem.quantity",
            "sum_base_price": "lineitem.extended_price",
            "sum_disc_price": "lineitem.revenue",
            "sum_charge": "lineitem.charge",
            "avg_qty": "lineitem.avg_quantity",
            "avg_price": "lineitem.avg_price",
            "avg_disc": "lineitem.avg_discount",
            "count_order": "lineitem.count",
        },
    )


def test_q3_shipping_priority(tpch):
    model, warehouse, answers = tpch
    query = QUESTIONS["Q3"]
    rows = run_query(model, warehouse, query).data
    _check(
        rows,
        answers[3],
        {
            "l_orderkey": "lineitem.orderkey",
            "revenue": "lineitem.revenue",
            "o_orderdate": "orders.orderdate",
            "o_shippriority": "orders.shippriority",
        },
    )


def test_q6_forecasting_revenue_change(tpch):
    model, warehouse, answers = tpch
    query = QUESTIONS["Q6"]
    rows = run_query(model, warehouse, query).data
    _check(rows, answers[6], {"revenue": "lineitem.discount_amount"})


def test_q10_returned_item_reporting(tpch):
    model, warehouse, answers = tpch
    query = QUESTIONS["Q10"]
    rows = run_query(model, warehouse, query).data
    _check(
        rows,
        answers[10],
        {
            "c_custkey": "customer.custkey",
            "c_name": "customer.name",
            "revenue": "lineitem.revenue",
            "c_acctbal": "customer.acctbal",
            "n_name": "nation.name",
            "c_address": "customer.address",
            "c_phone": "customer.phone",
            "c_comment": "customer.comment",
        },
    )


def test_q12_shipping_modes_and_order_priority(tpch):
    model, warehouse, answers = tpch
    query = QUESTIONS["Q12"]
    rows = run_query(model, warehouse, query).data
    _check(
        rows,
        answers[12],
        {
            "l_shipmode": "lineitem.shipmode",
            "high_line_count": "lineitem.high_priority_count",
            "low_line_count": "lineitem.low_priority_count",
        },
    )


def test_q14_promotion_effect(tpch):
    model, warehouse, answers = tpch
    query = QUESTIONS["Q14"]
    rows = run_query(model, warehouse, query).data
    _check(rows, answers[14], {"promo_revenue": "lineitem.promo_revenue_share"})


def test_view_pins_the_supplier_nation(tpch):
    """Role-playing nation: the same table as customer nation and supplier nation gives different numbers."""
    model, warehouse, _ = tpch
    by_customer = run_query(
        model,
        warehouse,
        {"measures": ["lineitem.revenue"], "dimensions": ["nation.name"], "order": {"nation.name": "asc"}},
    ).data
    by_supplier = run_query(
        model,
        warehouse,
        {
            "measures": ["lineitem.revenue"],
            "dimensions": ["supplier_nation.name"],
            "order": {"supplier_nation.name": "asc"},
        },
    ).data
    plain = warehouse.execute(
        "SELECT n.n_name, SUM(l_extendedprice * (1 - l_discount)) FROM lineitem "
        "JOIN supplier ON l_suppkey = s_suppkey JOIN nation n ON s_nationkey = n.n_nationkey "
        "GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    assert [r["supplier_nation.name"] for r in by_supplier] == [r["n_name"] for r in plain]
    for got, want in zip(by_supplier, plain, strict=True):
        assert got["lineitem.revenue"] == pytest.approx(float(list(want.values())[1]), rel=1e-12)
    assert by_customer != by_supplier
