"""Time the 22 TPC-H queries through DuckDBWarehouse and check them against dbgen's answers.

A baseline for the warehouse layer (raw SQL, no semantic layer): later semantic-layer benchmarks
compare against these numbers. Needs `python3 bench/tpch_sf1.py` first (`make bench` does both).
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

from headless_bi.warehouse import DuckDBWarehouse

DATA = Path(__file__).resolve().parent / ".data"
TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


def load(folder: Path) -> DuckDBWarehouse:
    """An in-memory warehouse with each Parquet file copied into a native table."""
    warehouse = DuckDBWarehouse(pool_size=1, default_timeout_s=600)
    for table in TABLES:
        path = str(folder / f"{table}.parquet").replace("'", "''")
        warehouse.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{path}')")
    return warehouse


def matches(rows: list[dict[str, object]], answer: str) -> bool:
    """Same row count and values; numbers equal to 1e-6 relative (answers are printed text)."""
    expected = list(csv.reader(answer.splitlines(), delimiter="|"))[1:]
    if len(rows) != len(expected):
        return False
    for got, want in zip(rows, expected, strict=True):
        for value, text in zip(got.values(), want, strict=True):
            if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
                if not math.isclose(float(value), float(text), rel_tol=1e-6, abs_tol=1e-9):
                    return False
            elif str(value) != text:
                return False
    return True


def _read_pairs(warehouse: DuckDBWarehouse, path: Path, column: str) -> dict[int, str]:
    """query_nr → text from one of dbgen's CSVs (answers are multi-line, quoted fields)."""
    quoted = str(path).replace("'", "''")
    table = warehouse.execute(f"SELECT query_nr, {column} FROM read_csv('{quoted}', header = true)")
    return dict(zip(table.column("query_nr").to_pylist(), table.column(column).to_pylist(), strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sf", default="1")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per query (median reported)")
    args = parser.parse_args(argv)
    folder = DATA / f"tpch_sf{args.sf}"
    if not (folder / "lineitem.parquet").is_file():
        print(f"no data in {folder}: run python3 bench/tpch_sf1.py --sf {args.sf}", file=sys.stderr)
        return 2
    start = time.monotonic()
    warehouse = load(folder)
    print(f"loaded sf{args.sf} in {time.monotonic() - start:.1f} s")
    queries = _read_pairs(warehouse, folder / "tpch_queries.csv", "query")
    answer_file = folder / f"tpch_answers_sf{args.sf}.csv"
    answers = _read_pairs(warehouse, answer_file, "answer") if answer_file.is_file() else {}
    failures, medians = [], []
    for nr, sql in sorted(queries.items()):
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            rows = warehouse.execute(sql).to_pylist()
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        medians.append(median)
        verdict = "ok" if nr not in answers or matches(rows, answers[nr]) else "WRONG"
        if verdict != "ok":
            failures.append(nr)
        print(f"Q{nr:02d}  {median * 1000:8.1f} ms  {len(rows):6d} rows  {verdict}")
    warehouse.close()
    print(f"total {sum(medians):.2f} s (median of {args.runs} runs each); "
          f"{len(queries) - len(failures)}/{len(queries)} match the answers")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
