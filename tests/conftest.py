"""Shared fixtures: the shared test data and the PostgreSQL server.

Locally a missing resource skips its tests with a message saying what to provide; under CI
(`CI` set) it fails instead, so a misconfigured CI run cannot pass by skipping everything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_DSN = os.environ.get("HBI_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message + " (required under CI)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder: `<repo>/../shared/data`, else `$HBI_SHARED_DATA`."""
    candidates = [Path(__file__).resolve().parents[1].parent / "shared" / "data"]
    if os.environ.get("HBI_SHARED_DATA"):
        candidates.append(Path(os.environ["HBI_SHARED_DATA"]))
    for path in candidates:
        if (path / "README.md").is_file():
            return path
    _missing("shared test data not found at " + " or ".join(map(str, candidates))
             + "; put it beside the repo as ../shared/data or set HBI_SHARED_DATA")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A DSN for the test PostgreSQL database (`$HBI_TEST_PG_DSN`, default 127.0.0.1:5432/test)."""
    import psycopg

    try:
        with psycopg.connect(PG_DSN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _missing(f"PostgreSQL not reachable at '{PG_DSN}': {exc}")
    return PG_DSN


CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright never downloads a browser here


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright, for the UI's browser tests."""
    if not Path(CHROMIUM).is_file():
        _missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def demo_duckdb(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo warehouse, generated once per test run (deterministic: the same rows every time)."""
    from headless_bi.demo import generate_demo_data

    path = str(tmp_path_factory.mktemp("demo") / "demo.duckdb")
    generate_demo_data(path)
    return path


@pytest.fixture(scope="module")
def demo_wh(demo_duckdb: str) -> Iterator[Any]:
    """The demo warehouse opened read-only, as the service opens it."""
    from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse

    wh = DuckDBWarehouse(demo_duckdb, read_only=True)
    yield wh
    wh.close()
