"""Semantic layer speed, in one run on TPC-H sf1 (generate it first: `python3 bench/tpch_sf1.py`).

1. Compile latency: p50/p99 of `compile_query` over 24 varied queries on a warm model (no cache:
   every call parses, plans and renders SQL anew).
2. End to end: `run_query` (compile + DuckDB + Arrow, and + rows) divided by the hand-written TPC-H
   SQL run on the same DuckDB database, alternating runs so both see the same machine state.

Usage: .venv/bin/python bench/semantic_bench.py [--data bench/.data/tpch_sf1] [--repeat 7]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headless_bi.semantic.compiler import compile_query  # noqa: E402
from headless_bi.semantic.loader import load_models  # noqa: E402
from headless_bi.service import run_query  # noqa: E402
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse  # noqa: E402
from headless_bi.warehouse.files import load_files  # noqa: E402

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]

# The TPC-H questions as semantic queries (shared with tests/test_tpch_answers.py).
TPCH = {
    int(name[1:]): query
    for name, query in json.loads(
        (ROOT / "semantic_models" / "tpch" / "tpch_questions.json").read_text()
    ).items()
}

EXTRA = [
    {"measures": ["orders.count"]},
    {"measures": ["orders.count"], "dimensions": ["orders.orderstatus"]},
    {"measures": ["orders.total_price"], "dimensions": ["customer.mktsegment"]},
    {"measures": ["lineitem.revenue"], "dimensions": ["nation.name"]},
    {"measures": ["lineitem.revenue"], "dimensions": ["region.name", "nation.name"]},
    {
        "measures": ["customer.balance", "orders.total_price", "lineitem.revenue"],
        "dimensions": ["nation.name"],
    },
    {"measures": ["customer.balance"], "dimensions": ["lineitem.shipmode"]},
    {
        "measures": ["orders.count"],
        "timeDimensions": [{"dimension": "orders.orderdate", "granularity": "month"}],
    },
    {
        "measures": ["orders.count"],
        "timezone": "America/New_York",
        "timeDimensions": [
            {
                "dimension": "orders.orderdate",
                "granularity": "week",
                "dateRange": ["1996-01-01", "1996-12-31"],
            }
        ],
    },
    {
        "measures": ["lineitem.revenue_running_total"],
        "timeDimensions": [{"dimension": "lineitem.shipdate", "granularity": "year"}],
    },
    {
        "measures": ["orders.count"],
        "filters": [
            {
                "or": [
                    {"member": "orders.orderpriority", "operator": "startsWith", "values": ["1-"]},
                    {"member": "orders.orderstatus", "operator": "notEquals", "values": ["F"]},
                ]
            }
        ],
    },
    {
        "measures": ["lineitem.revenue"],
        "dimensions": ["part.brand"],
        "filters": [{"member": "lineitem.revenue", "operator": "gt", "values": ["1000000"]}],
        "limit": 5,
    },
    {"measures": ["orders.customers"], "dimensions": ["orders.orderpriority"]},
    {"dimensions": ["nation.name", "region.name"]},
    {"measures": ["supplier.count"], "dimensions": ["supplier_nation.name"]},
    {
        "measures": ["lineitem.promo_revenue_share"],
        "dimensions": ["lineitem.shipmode"],
        "timeDimensions": [
            {
                "dimension": "lineitem.shipdate",
                "granularity": "quarter",
                "dateRange": "from 1995-01-01 to 1995-12-31",
            }
        ],
    },
    {"measures": ["orders.avg_total_price"], "dimensions": ["lineitem.returnflag"]},
    {
        "measures": ["lineitem.count", "lineitem.order_count"],
        "dimensions": ["customer.mktsegment"],
        "filters": [{"member": "customer.name", "operator": "contains", "values": ["0000"]}],
        "total": True,
    },
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_compile(model, queries: list[dict], rounds: int) -> dict[str, float]:
    for query in queries:  # warm-up: imports, dialect objects
        compile_query(model, query)
    samples = []
    for _ in range(rounds):
        for query in queries:
            start = time.perf_counter()
            compile_query(model, query)
            samples.append((time.perf_counter() - start) * 1e3)
    return {"p50_ms": percentile(samples, 0.5), "p99_ms": percentile(samples, 0.99), "n": len(samples)}


def hand_written(data: Path) -> dict[int, str]:
    with (data / "tpch_queries.csv").open(newline="") as handle:
        rows = {int(r["query_nr"]): r["query"] for r in csv.DictReader(handle)}
    if not rows:
        raise SystemExit("no TPC-H queries found")
    return rows


def bench_end_to_end(model, warehouse, queries: dict[int, str], repeat: int) -> list[dict]:
    out = []
    for number, semantic in TPCH.items():
        raw_times, arrow_times, rows_times = [], [], []
        warehouse.execute(queries[number])
        _ = run_query(model, warehouse, semantic).data
        for _ in range(repeat):
            start = time.perf_counter()
            warehouse.execute(queries[number])
            raw_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = run_query(model, warehouse, semantic)
            arrow_times.append(time.perf_counter() - start)
            _ = result.data
            rows_times.append(time.perf_counter() - start)
        raw = statistics.median(raw_times)
        out.append(
            {
                "query": f"Q{number}",
                "raw_ms": raw * 1e3,
                "semantic_arrow_ratio": statistics.median(arrow_times) / raw,
                "semantic_rows_ratio": statistics.median(rows_times) / raw,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / ".data" / "tpch_sf1")
    parser.add_argument(
        "--queries",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "tpch_sf0.1",
        help="folder with tpch_queries.csv (the query text is the same at every scale)",
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    model = load_models(ROOT / "semantic_models" / "tpch")
    queries = list(TPCH.values()) + EXTRA
    stats = bench_compile(model, queries, args.rounds)
    print(
        f"compile latency over {len(queries)} queries x {args.rounds}: "
        f"p50 {stats['p50_ms']:.3f} ms, p99 {stats['p99_ms']:.3f} ms"
    )
    if not (args.data / "lineitem.parquet").exists():
        raise SystemExit(f"no TPC-H data at {args.data}; run: python3 bench/tpch_sf1.py")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "tpch.duckdb")
        load_files([args.data / f"{t}.parquet" for t in TABLES], path)
        warehouse = DuckDBWarehouse(path, default_timeout_s=600)
        sql = hand_written(args.queries if (args.queries / "tpch_queries.csv").exists() else args.data)
        print(
            f"end to end on {args.data.name}, median of {args.repeat} (ratio = semantic / hand-written SQL):"
        )
        for row in bench_end_to_end(model, warehouse, sql, args.repeat):
            print(
                f"  {row['query']:>4}: raw {row['raw_ms']:8.1f} ms"
                f"   to Arrow x{row['semantic_arrow_ratio']:.3f}"
                f"   to rows x{row['semantic_rows_ratio']:.3f}"
            )
        warehouse.close()


if __name__ == "__main__":
    main()
