"""What governance costs, in one run on the demo warehouse (generated into a temporary folder).

1. `govern`: building a caller's governed model (the first query of a policy key) and the cached
   lookup every later query pays.
2. Compile p50/p99 of the same queries as the operator (no policies), an analyst (row filter on the
   region) and a viewer (row filter and hidden members).
3. End to end: the analyst's `run_query` against hand-written SQL with the same region filter on the
   same DuckDB file, alternating runs; the rows must be equal.
4. The guard: `Runtime.query` for a caller (rate limit, audit log, result cache off) against
   `run_query` of the same query and context.

Usage: .venv/bin/python bench/security_bench.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from headless_bi.demo import generate_demo_data  # noqa: E402
from headless_bi.runtime import Runtime, Settings  # noqa: E402
from headless_bi.security import govern as governance  # noqa: E402
from headless_bi.security.context import SecurityContext  # noqa: E402
from headless_bi.semantic.compiler import compile_query  # noqa: E402
from headless_bi.semantic.loader import load_models  # noqa: E402
from headless_bi.service import bind_model, run_query  # noqa: E402
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse  # noqa: E402

MODELS = ROOT / "semantic_models" / "demo"
ADMIN = SecurityContext.create("ann", {"Admin"}, {}, auth="jwt")
ANALYST = SecurityContext.create("ada", {"Analyst"}, {"region": "DACH"}, auth="jwt")
VIEWER = SecurityContext.create("vic", {"Viewer"}, {"region": ["DACH", "Nordics"]}, auth="jwt")

QUERIES = [
    {"measures": ["sales.revenue"], "dimensions": ["sales.region"]},
    {"measures": ["sales.revenue", "sales.quantity"], "dimensions": ["sales.products_category"]},
    {
        "measures": ["sales.revenue"],
        "timeDimensions": [{"dimension": "sales.created_at", "granularity": "month"}],
    },
    {"measures": ["sales.order_count"], "dimensions": ["sales.stores_name"], "limit": 10,
     "order": {"sales.order_count": "desc"}},
    {"measures": ["orders_overview.count"], "dimensions": ["orders_overview.status"]},
    {"measures": ["store_traffic.visits"], "dimensions": ["store_traffic.stores_name"]},
]  # fmt: skip

# Revenue by month for DACH: the analyst's query and the SQL one would write by hand.
ANALYST_QUERY = {
    "measures": ["sales.revenue"],
    "timeDimensions": [{"dimension": "sales.created_at", "granularity": "month"}],
    "order": {"sales.created_at": "asc"},
}
HAND_SQL = """
SELECT date_trunc('month', o.created_at) AS month,
       SUM(oi.quantity * oi.unit_price * (1 - oi.discount)) AS revenue
FROM order_items oi
JOIN orders o ON oi.order_id = o.id
JOIN stores s ON o.store_id = s.id
JOIN regions r ON s.region_id = r.id
WHERE r.name = 'DACH'
GROUP BY 1 ORDER BY 1
"""


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="security_bench_"))
    warehouse_path = str(tmp / "demo.duckdb")
    generate_demo_data(warehouse_path)
    model = load_models(MODELS)
    warehouse = DuckDBWarehouse(warehouse_path, read_only=True)
    bound = bind_model(model, warehouse)

    # 1. govern: cold (a new policy key) and cached
    cold = []
    for i in range(args.repeat):
        ctx = SecurityContext.create(f"u{i}", {"Analyst"}, {"region": f"R{i}"}, auth="jwt")
        started = time.perf_counter()
        governance.govern(bound, ctx)
        cold.append((time.perf_counter() - started) * 1000)
    cached = timed(lambda: governance.govern(bound, ANALYST), args.repeat * 10)
    print(f"govern: new policy key p50 {statistics.median(cold):.2f} ms, cached p50 "
          f"{statistics.median(cached) * 1000:.1f} us")  # fmt: skip

    # 2. compile as operator, analyst, viewer
    print("compile (all queries, p50 / p99 ms):")
    for name, security in (("operator", None), ("analyst", ANALYST), ("viewer", VIEWER)):
        samples: list[float] = []
        for _ in range(args.repeat):
            for query in QUERIES:
                started = time.perf_counter()
                compile_query(bound, query, security=security)
                samples.append((time.perf_counter() - started) * 1000)
        print(f"  {name:<9} p50 {statistics.median(samples):.2f}  p99 {p(samples, 99):.2f}")

    # 3. the analyst's governed query against hand-written SQL with the same filter
    governed = run_query(model, warehouse, ANALYST_QUERY, security=ANALYST)
    con = duckdb.connect(warehouse_path, read_only=True)
    hand = con.sql(HAND_SQL).fetchall()
    mine = [tuple(r.values()) for r in governed.data]
    same = len(mine) == len(hand) and all(
        abs(float(a[1]) - float(b[1])) <= 1e-6 * max(1.0, abs(float(b[1])))
        for a, b in zip(mine, hand, strict=True)
    )
    assert same, "the governed answer differs from the hand-written SQL"
    ours, raw = [], []
    for _ in range(args.repeat):
        ours += timed(lambda: run_query(model, warehouse, ANALYST_QUERY, security=ANALYST), 1)
        raw += timed(lambda: con.sql(HAND_SQL).fetchall(), 1)
    print(f"analyst revenue by month (DACH): run_query p50 {statistics.median(ours):.2f} ms, "
          f"hand-written SQL p50 {statistics.median(raw):.2f} ms, ratio "
          f"{statistics.median(ours) / statistics.median(raw):.2f}")  # fmt: skip
    con.close()

    # 4. the guard (rate limit + audit log) around a caller's query
    settings = Settings(
        models=str(MODELS), warehouse=warehouse_path, metadata_url=f"sqlite:///{tmp}/metadata.db",
        result_cache_ttl_s=0, rate_limit_per_minute=1_000_000,
    )  # fmt: skip
    runtime = Runtime(settings, warehouse, model)
    query = QUERIES[0]
    guarded, bare = [], []
    for _ in range(args.repeat):
        guarded += timed(lambda: runtime.query(query, security=ANALYST, path="load"), 1)
        bare += timed(lambda: run_query(model, warehouse, query, security=ANALYST), 1)
    extra = statistics.median(guarded) - statistics.median(bare)
    print(f"guard: Runtime.query p50 {statistics.median(guarded):.2f} ms vs run_query "
          f"{statistics.median(bare):.2f} ms (+{extra:.2f} ms)")  # fmt: skip
    runtime.guard.close()
    warehouse.close()


if __name__ == "__main__":
    main()
