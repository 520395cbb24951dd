"""Latency of `ask` per question after warm-up, and the memory the embedding model takes.

Runs the question sets of tests/nlq_questions on their warehouses (the demo generated, TPC-H sf0.1 and
the jaffle shop from ../shared/data) and reports p50/p90/p99 of the whole ask (match + run the query) the
first time each question is seen (its phrases not yet in the embedding cache: what a user meets), of
matching the same question again (cache warm), and of running the final query directly (the floor),
plus the resident memory added by loading the model. `python bench/nlq_bench.py`
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headless_bi.demo import generate_demo_data  # noqa: E402
from headless_bi.nlq.answer import ask  # noqa: E402
from headless_bi.nlq.embeddings import get_embedder  # noqa: E402
from headless_bi.nlq.evaluate import load_question_set  # noqa: E402
from headless_bi.nlq.index import get_index  # noqa: E402
from headless_bi.nlq.matcher import interpret  # noqa: E402
from headless_bi.semantic.loader import load_models  # noqa: E402
from headless_bi.service import run_query  # noqa: E402
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse  # noqa: E402
from headless_bi.warehouse.files import load_files  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    shared = ROOT.parent / "shared" / "data"
    tmp = Path(tempfile.mkdtemp(prefix="nlq_bench_"))
    generate_demo_data(str(tmp / "demo.duckdb"))
    load_files(sorted((shared / "tpch_sf0.1").glob("*.parquet")), str(tmp / "tpch.duckdb"))
    jaffle = sorted((shared / "jaffle_shop" / "classic").glob("raw_*.csv"))
    load_files(jaffle, str(tmp / "jaffle_shop.duckdb"))
    before = rss_mb()
    started = time.perf_counter()
    get_embedder()
    print(f"model load: {time.perf_counter() - started:.2f} s, +{rss_mb() - before:.0f} MB resident")
    whole: list[float] = []
    matching: list[float] = []
    direct: list[float] = []
    for stem in ("demo", "tpch", "jaffle_shop"):
        qs = load_question_set(ROOT / "tests" / "nlq_questions" / f"{stem}.yaml", ROOT)
        model = load_models(qs.models)
        warehouse = DuckDBWarehouse(str(tmp / f"{stem}.duckdb"), read_only=True)

        def run(q: dict, model=model, warehouse=warehouse) -> object:
            return run_query(model, warehouse, q)

        t = time.perf_counter()
        index = get_index(model, run)
        print(f"{stem}: index built in {time.perf_counter() - t:.2f} s ({len(index.entries)} members, "
              f"{len(index.values)} value phrases)")  # fmt: skip
        for item in qs.questions[:3]:  # warm-up
            ask(item["question"], model=model, execute=run, probe=run, today=qs.today)
        for item in qs.questions:
            # first the whole ask, as a user meets it: this question's phrases were never embedded
            t = time.perf_counter()
            ask(item["question"], model=model, execute=run, probe=run, today=qs.today)
            whole.append((time.perf_counter() - t) * 1000)
            # the same question again: matching alone, its phrases now in the embedding cache
            t = time.perf_counter()
            interp = interpret(item["question"], model, index, today=qs.today)
            matching.append((time.perf_counter() - t) * 1000)
            if interp.query is not None:
                t = time.perf_counter()
                run(interp.query)
                direct.append((time.perf_counter() - t) * 1000)
        warehouse.close()
    print(f"questions: {len(whole)}")
    rows = (("ask, first time", whole), ("match, seen before", matching), ("query alone", direct))
    for name, values in rows:
        print(f"  {name:<18} p50 {statistics.median(values):6.1f} ms   p90 {pct(values, 90):6.1f} ms   "
              f"p99 {pct(values, 99):6.1f} ms")  # fmt: skip
    print(f"resident memory at the end: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
