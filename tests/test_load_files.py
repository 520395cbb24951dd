"""load_files: the real shared data files load with the row counts documented in its README."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from headless_bi.errors import QueryError
from headless_bi.warehouse import DuckDBWarehouse
from headless_bi.warehouse.files import load_files, table_name_for


def _count(warehouse: Path, table: str) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        row = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    assert row is not None
    return int(row[0])


def test_jaffle_classic_csvs(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "jaffle_shop" / "classic"
    warehouse = tmp_path / "jaffle.duckdb"
    counts = load_files(sorted(folder.glob("raw_*.csv")), str(warehouse))
    assert counts == {"raw_customers": 100, "raw_orders": 99, "raw_payments": 113}
    with DuckDBWarehouse(str(warehouse), read_only=True) as wh:
        columns = wh.table_columns()
    assert columns["raw_orders"] == {"id": "BIGINT", "user_id": "BIGINT", "order_date": "DATE",
                                     "status": "VARCHAR"}


def test_tpch_parquet(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "tpch_sf0.1"
    counts = load_files(sorted(folder.glob("*.parquet")), str(tmp_path / "tpch.duckdb"))
    assert counts == {
        "customer": 15_000, "lineitem": 600_572, "nation": 25, "orders": 150_000,
        "part": 20_000, "partsupp": 80_000, "region": 5, "supplier": 1_000,
    }
    with DuckDBWarehouse(str(tmp_path / "tpch.duckdb"), read_only=True) as wh:
        assert wh.table_columns()["customer"]["c_acctbal"] == "DECIMAL(15,2)"


def test_json_files_and_dashed_names(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "superset_examples"
    paths = [folder / "bart-lines.json", folder / "energy.json", folder / "sf_population.json"]
    counts = load_files(paths, str(tmp_path / "superset.duckdb"))
    assert counts == {"bart_lines": 5, "energy": 85, "sf_population": 25}


def test_mixed_folders(shared_data: Path, tmp_path: Path) -> None:
    paths = [
        shared_data / "superset_examples" / "tutorial_flights.csv",
        shared_data / "superset_examples" / "slack" / "channel_members.csv",
        shared_data / "timeseries" / "example_yosemite_temps.csv",
        shared_data / "tpch_sf0.1" / "tpch_queries.csv",
    ]
    counts = load_files(paths, str(tmp_path / "mixed.duckdb"))
    assert counts == {"tutorial_flights": 2_954, "channel_members": 8_368,
                      "example_yosemite_temps": 18_721, "tpch_queries": 22}


def test_replaces_existing_tables(shared_data: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE raw_customers AS SELECT 1 AS stale")
        con.execute("CREATE TABLE untouched AS SELECT 1 AS x")
    source = shared_data / "jaffle_shop" / "classic" / "raw_customers.csv"
    assert load_files([source], str(warehouse)) == {"raw_customers": 100}
    assert load_files([str(source)], str(warehouse)) == {"raw_customers": 100}
    assert _count(warehouse, "raw_customers") == 100
    assert _count(warehouse, "untouched") == 1


def test_newline_delimited_and_array_json(tmp_path: Path) -> None:
    rows = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": None}]
    (tmp_path / "lines.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "ndjson-in-dot-json.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "Array File.json").write_text(json.dumps(rows))
    paths = [tmp_path / "lines.jsonl", tmp_path / "ndjson-in-dot-json.json", tmp_path / "Array File.json"]
    counts = load_files(paths, str(tmp_path / "j.duckdb"))
    assert counts == {"lines": 3, "ndjson_in_dot_json": 3, "array_file": 3}


def test_paths_with_quotes_are_bound_not_spliced(shared_data: Path, tmp_path: Path) -> None:
    tricky = tmp_path / "o'brien'); DROP TABLE x; --.csv"
    shutil.copy(shared_data / "jaffle_shop" / "classic" / "raw_orders.csv", tricky)
    assert load_files([tricky], str(tmp_path / "q.duckdb")) == {"o_brien_drop_table_x": 99}


def test_unknown_extension_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.xlsx"
    bad.write_text("x")
    with pytest.raises(QueryError, match=r"notes\.xlsx"):
        load_files([bad], str(tmp_path / "w.duckdb"))


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match=r"nope\.csv.*no such file"):
        load_files([tmp_path / "nope.csv"], str(tmp_path / "w.duckdb"))


def test_two_files_for_one_table_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    jaffle = shared_data / "jaffle_shop"
    both = [jaffle / "classic" / "raw_customers.csv", jaffle / "modern_partial" / "raw_customers.csv"]
    with pytest.raises(QueryError, match="raw_customers"):
        load_files(both, str(tmp_path / "w.duckdb"))


def test_a_bad_file_leaves_the_database_unchanged(shared_data: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    load_files([shared_data / "jaffle_shop" / "classic" / "raw_orders.csv"], str(warehouse))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(QueryError, match=r"broken\.parquet"):
        load_files([shared_data / "jaffle_shop" / "classic" / "raw_customers.csv", broken], str(warehouse))
    with DuckDBWarehouse(str(warehouse), read_only=True) as wh:
        assert wh.tables() == ["raw_orders"]


def test_creates_the_warehouse_folder(shared_data: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "var" / "nested" / "w.duckdb"
    load_files([shared_data / "tpch_sf0.1" / "region.parquet"], str(warehouse))
    assert _count(warehouse, "region") == 5


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("raw_customers.csv", "raw_customers"),
        ("bart-lines.json", "bart_lines"),
        ("data/My Sales (2024).CSV", "my_sales_2024"),
        ("2024-orders.parquet", "t_2024_orders"),
        ("events.csv.gz", "events"),
        ("--.csv", "t"),
    ],
)
def test_table_names(path: str, name: str) -> None:
    assert table_name_for(path) == name
