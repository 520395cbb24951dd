#!/usr/bin/env python3
"""Generate TPC-H (scale factor 1 by default) as Parquet into bench/.data/tpch_sf1/, once.

Follows shared/data/tpch_sf0.1/HOW.txt: DuckDB's `tpch` extension comes from the PyPI package
`duckdb-ext-tpch`, which must match its DuckDB version exactly, so it runs in its own venv
(bench/.data/venv with duckdb==1.4.4) instead of the project's. dbgen is deterministic, so the
files are reproducible; they are git-ignored and skipped when already present.
Standard library only: run it with any python3 >= 3.11.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DATA = BENCH / ".data"
VENV = DATA / "venv"
PACKAGES = ["duckdb==1.4.4", "duckdb-ext-tpch==1.4.4.20260205"]
TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
ANSWER_SCALES = {"0.01", "0.1", "1"}  # the scale factors tpch_answers() knows

# Runs inside the pinned venv; paths and the scale factor arrive through the environment.
GENERATE = r"""
import os, sysconfig, duckdb
sf, out = float(os.environ["SF"]), os.environ["OUT"]
con = duckdb.connect()
con.execute("SET autoinstall_known_extensions = false")
con.execute("SET autoload_known_extensions = false")
con.execute("SET enable_progress_bar = false")
# duckdb-ext-tpch ships <site-packages>/duckdb_ext/extensions/v1.4.4/<platform>/tpch.duckdb_extension
ext_dir = os.path.join(sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions")
con.execute("SET extension_directory = ?", [ext_dir])
con.execute("LOAD tpch")
con.execute(f"CALL dbgen(sf={sf!r})")

def target(name):
    return "'" + os.path.join(out, name).replace("'", "''") + "'"

for t in os.environ["TABLES"].split():
    con.execute(f"COPY {t} TO {target(t + '.parquet')} (FORMAT parquet, COMPRESSION zstd)")
queries = "SELECT query_nr, query FROM tpch_queries() ORDER BY query_nr"
con.execute(f"COPY ({queries}) TO {target('tpch_queries.csv')} (HEADER)")
if os.environ["ANSWERS"]:
    con.execute(
        f"COPY (SELECT query_nr, scale_factor, answer FROM tpch_answers() WHERE scale_factor = {sf!r} "
        f"ORDER BY query_nr) TO {target(os.environ['ANSWERS'])} (HEADER)"
    )
"""


def expected_files(sf: str) -> list[str]:
    files = [f"{t}.parquet" for t in TABLES] + ["tpch_queries.csv"]
    return files + ([f"tpch_answers_sf{sf}.csv"] if sf in ANSWER_SCALES else [])


def ensure_venv() -> Path:
    """The pinned generator venv, created and filled on first use."""
    python = VENV / "bin" / "python"
    check = ("import duckdb, importlib.metadata as m; "
             "assert duckdb.__version__ == '1.4.4'; m.version('duckdb-ext-tpch')")
    if python.exists() and subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
        return python
    print(f"creating {VENV} with {' '.join(PACKAGES)}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PACKAGES],
                   check=True)
    return python


def generate(sf: str, out: Path) -> None:
    """Write every file into a temporary folder, then rename it, so a half-run never looks done."""
    python = ensure_venv()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    answers = f"tpch_answers_sf{sf}.csv" if sf in ANSWER_SCALES else ""
    env = {**os.environ, "SF": sf, "OUT": str(partial), "TABLES": " ".join(TABLES), "ANSWERS": answers}
    subprocess.run([python, "-c", GENERATE], env=env, check=True)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sf", default="1", help="scale factor (answers exist for 0.01, 0.1 and 1)")
    parser.add_argument("--out", type=Path, help="output folder (default bench/.data/tpch_sf<SF>)")
    args = parser.parse_args(argv)
    out = args.out or DATA / f"tpch_sf{args.sf}"
    if all((out / name).is_file() for name in expected_files(args.sf)):
        print(f"TPC-H sf{args.sf} already in {out}; skipping")
        return 0
    start = time.monotonic()
    generate(args.sf, out)
    elapsed = time.monotonic() - start
    total = 0
    for name in expected_files(args.sf):
        size = (out / name).stat().st_size
        total += size
        print(f"  {name:28} {size / 1e6:9.1f} MB")
    print(f"TPC-H sf{args.sf}: {total / 1e6:.1f} MB in {out} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
