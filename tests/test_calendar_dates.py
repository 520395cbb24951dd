"""DATE columns are calendar days: a query time zone must not move them to the previous day."""

from __future__ import annotations

from pathlib import Path

import pytest

from headless_bi.semantic.compiler import compile_query
from headless_bi.semantic.loader import load_models
from headless_bi.service import bind_model, run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse
from headless_bi.warehouse.files import load_files

MODELS = Path(__file__).resolve().parents[1] / "semantic_models" / "jaffle_shop"


@pytest.fixture(scope="module")
def jaffle(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("jaffle") / "jaffle.duckdb"
    load_files(sorted((shared_data / "jaffle_shop" / "classic").glob("raw_*.csv")), str(path))
    warehouse = DuckDBWarehouse(str(path))
    yield load_models(MODELS), warehouse
    warehouse.close()


@pytest.mark.parametrize("timezone", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_month_buckets_of_a_date_column_ignore_the_zone(jaffle, timezone):
    model, warehouse = jaffle
    query = {
        "measures": ["orders.count"],
        "timeDimensions": [
            {
                "dimension": "orders.order_date",
                "granularity": "month",
                "dateRange": ["2018-01-01", "2018-02-28"],
            }
        ],
        "timezone": timezone,
    }
    rows = run_query(model, warehouse, query).data
    plain = warehouse.execute(
        "SELECT date_trunc('month', order_date) AS m, count(*) AS n FROM raw_orders "
        "WHERE order_date BETWEEN DATE '2018-01-01' AND DATE '2018-02-28' GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    assert [r["orders.count"] for r in rows] == [r["n"] for r in plain] == [29, 27]
    assert rows[0]["orders.order_date.month"] == "2018-01-01T00:00:00.000"


def test_binding_finds_date_columns_only(jaffle):
    model, warehouse = jaffle
    bound = bind_model(model, warehouse)
    assert bound.calendar_dates == {"orders.order_date"}
    assert bind_model(model, warehouse) is bound  # probed once per model version
    # without a warehouse (headless-bi compile) the Cube convention applies: times are UTC instants
    sql = compile_query(
        model,
        {
            "measures": ["orders.count"],
            "timezone": "America/New_York",
            "timeDimensions": [{"dimension": "orders.order_date", "granularity": "day"}],
        },
    ).sql
    assert "AT TIME ZONE" in sql
