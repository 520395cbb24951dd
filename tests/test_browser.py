"""A real browser against the running service: GraphiQL at /graphql runs a typed query, and the
Flask-AppBuilder UI at / lets the admin sign in.

Chromium is Debian's (/usr/bin/chromium; `.ci/run` installs it), driven by Playwright. GraphiQL's
scripts come from the service itself, so this works without internet access. Without Chromium the
tests are skipped locally and fail under CI.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import _missing
from test_server import ADMIN_PASSWORD, TPCH_MODELS, Server, tpch_duckdb

QUERY = "{ cube(orderBy: {orders: {orderstatus: asc}}) { orders { orderstatus count } } }"


@pytest.fixture(scope="module")
def server(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("browser")
    models = folder / "models"
    shutil.copytree(TPCH_MODELS, models)
    running = Server(models, str(tpch_duckdb(shared_data, folder)), folder / "work")
    yield running
    running.stop()


def test_graphiql_runs_a_typed_query(browser: Any, server: Server) -> None:
    expected = httpx.post(server.url + "/graphql", json={"query": QUERY}).json()["data"]["cube"]
    assert expected
    offsite: list[str] = []
    page = browser.new_page()
    page.on("request", lambda r: offsite.append(r.url) if not r.url.startswith(server.url) else None)
    page.goto(server.url + "/graphql")
    editor = page.locator(".graphiql-query-editor .CodeMirror").first
    editor.wait_for(timeout=30_000)
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(QUERY)  # typed as one input: no bracket auto-closing on the way
    page.locator(".graphiql-execute-button").click()
    response = page.locator(".graphiql-response")
    first = expected[0]["orders"]
    page.wait_for_function(
        "text => document.querySelector('.graphiql-response').innerText.includes(text)",
        arg=f'"orderstatus": {json.dumps(first["orderstatus"])}',
        timeout=30_000,
    )
    shown = response.inner_text()
    for row in expected:
        count = row["orders"]["count"]
        assert f'"count": {int(count) if float(count).is_integer() else count}' in shown, shown
    assert not offsite, f"GraphiQL loaded files from elsewhere: {offsite}"
    page.close()


def test_admin_ui_login(browser: Any, server: Server) -> None:
    try:
        import fab_ui.app  # noqa: F401
    except ModuleNotFoundError:
        _missing("fab_ui is not installed: the admin UI cannot be checked")
    page = browser.new_page()
    page.goto(server.url + "/")
    page.goto(server.url + "/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_load_state()
    assert "/login" not in page.url, page.content()
    assert page.locator("a[href*='logout']").count() >= 1
    page.close()
