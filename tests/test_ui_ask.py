"""The Ask page of the admin UI: who may open it, its assets, and a real browser asking questions.

The page is a plain client of /graphql (`ask`, then `load` for every edit), authenticated by the UI
session cookie; so the browser tests run the real service on the demo data with anonymous access
off, and check that an analyst limited to one region sees only that region's rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_fab_ui import CSRF, PASSWORD
from test_server import Server

from fab_ui import create_app
from fab_ui.ask_view import plotly_js
from fab_ui.bootstrap import ADMIN_PASSWORD_ENV
from headless_bi.demo.data import generate_demo_data
from headless_bi.runtime import Settings
from headless_bi.security.store import IdentityStore

DEMO_MODELS = Path(__file__).resolve().parents[1] / "semantic_models" / "demo"
TODAY = "2026-12-04"  # the demo data runs from 2023-12 to 2026-11
ANSWER_TIMEOUT_MS = 90_000  # the first question loads the sentence-embedding model

pytestmark = [
    pytest.mark.filterwarnings("ignore:'DateTimeField' renders:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Yielding raw tuples from iter_choices:DeprecationWarning"),
]


# --- the Flask app alone --------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    folder = tmp_path_factory.mktemp("ask_ui")
    url = f"sqlite:///{folder / 'metadata.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ADMIN_PASSWORD_ENV, PASSWORD)
        flask_app = create_app(Settings(metadata_url=url), var_dir=folder)
    store = IdentityStore(url)
    store.add_user("ana", ["Analyst"], password=PASSWORD, attributes={"region": "DACH"})
    store.add_user("vic", ["Viewer"], password=PASSWORD, attributes={"region": "Nordics"})
    with flask_app.app_context():
        sm = flask_app.appbuilder.sm
        sm.add_role("Outsider")
        outsider = sm.find_role("Outsider")
        sm.add_user("otto", "Otto", "Outsider", "otto@example.com", outsider, password=PASSWORD)
    return flask_app


def signed_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    token = CSRF.search(client.get("/login/").get_data(as_text=True))
    assert token
    form = {"username": username, "password": PASSWORD, "csrf_token": token[1]}
    response = client.post("/login/", data=form)
    assert response.status_code == 302 and not response.location.startswith("/login"), response.location
    return client


def test_ask_page_requires_login(app: Flask) -> None:
    response = app.test_client().get("/ask/")
    assert response.status_code == 302 and response.location.startswith("/login/")


@pytest.mark.parametrize("username", ["admin", "ana", "vic"])
def test_ask_page_renders_for_each_role(app: Flask, username: str) -> None:
    client = signed_in(app, username)
    response = client.get("/ask/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="ask-question"' in page and '<label for="ask-question">' in page
    assert 'data-graphql-url="/graphql"' in page
    assert re.search(r'<script src="/ask/assets/plotly\.min\.js"', page)
    assert re.search(r'<script src="/ask/assets/ask\.js\?v=\d+"', page)
    assert 'href="/ask/"' in page  # the menu item
    assert "Ask a question</a>" in client.get("/").get_data(as_text=True)
    assert "cdn" not in page.lower()


def test_roles_without_the_permission_are_refused(app: Flask) -> None:
    client = signed_in(app, "otto")
    response = client.get("/ask/")
    assert response.status_code in (302, 403) and "ask-question" not in response.get_data(as_text=True)
    home = client.get("/").get_data(as_text=True)
    assert 'href="/ask/"' not in home and "Ask a question" not in home


def test_analyst_and_viewer_roles_get_ask(app: Flask) -> None:
    with app.app_context():
        sm = app.appbuilder.sm
        for name in ("Analyst", "Viewer"):
            granted = {(pv.permission.name, pv.view_menu.name) for pv in sm.find_role(name).permissions}
            assert {("can_ask", "AskView"), ("menu_access", "Ask")} <= granted


def test_assets_are_served_locally(app: Flask) -> None:
    client = app.test_client()  # no data in them: public, like FAB's own static files
    plotly = client.get("/ask/assets/plotly.min.js")
    assert plotly.status_code == 200 and plotly.mimetype == "text/javascript"
    assert plotly.get_data() == plotly_js().read_bytes()
    script = client.get("/ask/assets/ask.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert "innerHTML" not in script.get_data(as_text=True)
    assert client.get("/ask/assets/ask.css").mimetype == "text/css"
    assert client.get("/ask/assets/secret_key").status_code == 404
    assert client.get("/ask/assets/..%2Fask_view.py").status_code == 404


# --- a real browser against the service -----------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo model and data; no anonymous access, so every answer is the signed-in user's."""
    folder = tmp_path_factory.mktemp("ask_browser")
    warehouse = folder / "demo.duckdb"
    generate_demo_data(str(warehouse))
    running = Server(DEMO_MODELS, str(warehouse), folder / "work", env={"HBI_ANONYMOUS_ROLE": ""})
    store = IdentityStore(f"sqlite:///{folder / 'work' / 'metadata.db'}")
    store.add_user("ana", ["Analyst"], password=PASSWORD, attributes={"region": "DACH"})
    store.add_user("vic", ["Viewer"], password=PASSWORD, attributes={"region": "Nordics"})
    yield running
    running.stop()


def admin_token(server: Server) -> str:
    from test_server import ADMIN_PASSWORD

    response = httpx.post(server.url + "/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    return str(response.json()["access_token"])


def load(server: Server, query: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(
        server.url + "/graphql",
        json={"query": "query($q: QueryInput!) { load(query: $q) { data } }", "variables": {"q": query}},
        headers={"Authorization": f"Bearer {admin_token(server)}"},
        timeout=60,
    )
    return list(response.json()["data"]["load"]["data"])


def sign_in(browser: Any, server: Server, username: str, password: str) -> tuple[Any, list[str]]:
    """A new page signed in through the login form; also collects requests that leave the server."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="en-US")  # 1,234.56
    offsite: list[str] = []
    page.on("request", lambda r: offsite.append(r.url) if not r.url.startswith(server.url) else None)
    page.goto(server.url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_load_state()
    assert "/login" not in page.url, page.content()
    return page, offsite


def ask(page: Any, question: str) -> None:
    page.fill("#ask-question", question)
    page.press("#ask-question", "Enter")  # the keyboard submits
    page.wait_for_function(
        "() => /^(Answered|The question needs)/.test(document.getElementById('ask-status').textContent)"
        " || !document.getElementById('ask-error').hidden",
        timeout=ANSWER_TIMEOUT_MS,
    )
    error = page.locator("#ask-error")
    assert not error.is_visible(), error.inner_text()


def wait_updated(page: Any) -> None:
    page.wait_for_function(
        "() => document.getElementById('ask-status').textContent.startsWith('Updated')"
        " || !document.getElementById('ask-error').hidden",
        timeout=30_000,
    )
    error = page.locator("#ask-error")
    assert not error.is_visible(), error.inner_text()


def table(page: Any) -> list[list[str]]:
    return [
        [cell.inner_text().strip() for cell in row.locator("td").all()]
        for row in page.locator("#ask-table tbody tr").all()
    ]


def headers(page: Any) -> list[str]:
    return [th.inner_text().strip() for th in page.locator("#ask-table thead th").all()]


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_ask_edit_and_rerun(browser: Any, server: Server) -> None:
    from test_server import ADMIN_PASSWORD

    page, offsite = sign_in(browser, server, "admin", ADMIN_PASSWORD)
    page.goto(f"{server.url}/ask/?today={TODAY}")
    ask(page, "revenue by region last quarter")
    assert "Revenue" in page.locator("#ask-restatement").inner_text()
    assert "2026-07-01" in page.locator("#ask-restatement").inner_text()
    assert "confidence" in page.locator("#ask-confidence").inner_text()
    assert headers(page) == ["Region", "Revenue"]
    rows = table(page)
    expected = load(server, {
        "measures": ["sales.revenue"], "dimensions": ["sales.region"],
        "timeDimensions": [{"dimension": "sales.created_at", "dateRange": ["2026-07-01", "2026-09-30"]}],
    })
    assert sorted(r[0] for r in rows) == sorted(r["sales.region"] for r in expected)
    by_region = {r["sales.region"]: r["sales.revenue"] for r in expected}
    for region, revenue in rows:
        assert number(revenue) == pytest.approx(by_region[region], abs=0.01)
    assert page.locator("#ask-chart[data-chart=bar] .main-svg").count() >= 1
    assert page.locator("#ask-chart .bars .point").count() == len(expected)
    page.screenshot(path="/tmp/ask_bar.png", full_page=True)

    # Remove the region breakdown (by keyboard): one total, shown as a number.
    remove = page.get_by_role("button", name="Remove breakdown Region")
    remove.focus()
    page.keyboard.press("Enter")
    wait_updated(page)
    assert "edited" in page.locator("#ask-confidence").inner_text()
    assert headers(page) == ["Revenue"]
    total = table(page)
    assert len(total) == 1 and number(total[0][0]) == pytest.approx(sum(by_region.values()), abs=0.05)
    assert page.locator("#ask-chart[data-chart=number] .main-svg").count() >= 1
    assert page.get_by_role("button", name="Remove breakdown Region").count() == 0

    # A monthly breakdown of the same quarter: three months, as a line.
    page.get_by_label("Granularity of Order Date").select_option("month")
    wait_updated(page)
    months = table(page)
    assert [m[0] for m in months] == ["2026-07", "2026-08", "2026-09"]
    assert sum(number(m[1]) for m in months) == pytest.approx(sum(by_region.values()), abs=0.05)
    assert page.locator("#ask-chart[data-chart=line] .main-svg").count() >= 1
    assert "by order date (month)" in page.locator("#ask-restatement").inner_text()

    # A wider date range: the first half of the year.
    page.get_by_label("Order Date from").fill("2026-01-01")
    page.get_by_label("Order Date to").fill("2026-06-30")
    page.get_by_label("Order Date to").dispatch_event("change")
    wait_updated(page)
    assert [m[0] for m in table(page)] == [f"2026-{m:02d}" for m in range(1, 7)]
    page.screenshot(path="/tmp/ask_line.png", full_page=True)
    assert not offsite, f"the page loaded files from elsewhere: {offsite}"
    page.close()


def test_filters_alternatives_and_clarification(browser: Any, server: Server) -> None:
    from test_server import ADMIN_PASSWORD

    page, _ = sign_in(browser, server, "admin", ADMIN_PASSWORD)
    page.goto(f"{server.url}/ask/?today={TODAY}")
    ask(page, "revenue by channel in DACH")
    values = page.get_by_label("Values of Region (separate several with commas)")
    assert values.input_value() == "DACH"
    dach = {r[0]: number(r[1]) for r in table(page)}
    values.fill("Nordics")
    values.press("Enter")
    values.dispatch_event("change")
    wait_updated(page)
    nordics = {r[0]: number(r[1]) for r in table(page)}
    expected = load(server, {
        "measures": ["sales.revenue"], "dimensions": ["sales.channel"],
        "filters": [{"member": "sales.region", "operator": "equals", "values": ["Nordics"]}],
    })
    assert nordics == pytest.approx({r["sales.channel"]: r["sales.revenue"] for r in expected}, abs=0.01)
    assert nordics != dach
    assert "where region is Nordics" in page.locator("#ask-restatement").inner_text()

    # Another reading offered by the answer runs when clicked.
    ask(page, "revenue by channel for France last quarter")
    readings = page.locator("#ask-suggestion-list button.ask-alt")
    assert readings.count() >= 1
    chosen = readings.first.inner_text()
    readings.first.click()
    wait_updated(page)
    assert page.locator("#ask-restatement").inner_text() == chosen

    # A question the model cannot place: a question back, with members to pick.
    ask(page, "blorp")
    assert page.locator("#ask-clarification").is_visible()
    assert not page.locator("#ask-result").is_visible()
    pick = page.locator("#ask-suggestion-list button.ask-suggest").first
    pick.click()
    wait_updated(page)
    assert len(table(page)) == 1
    page.screenshot(path="/tmp/ask_clarify.png", full_page=True)
    page.close()


def test_analyst_sees_only_their_region(browser: Any, server: Server) -> None:
    page, _ = sign_in(browser, server, "ana", PASSWORD)
    page.goto(f"{server.url}/ask/?today={TODAY}")
    ask(page, "revenue by region last quarter")
    rows = table(page)
    assert [r[0] for r in rows] == ["DACH"], rows
    expected = load(server, {
        "measures": ["sales.revenue"], "dimensions": ["sales.region"],
        "filters": [{"member": "sales.region", "operator": "equals", "values": ["DACH"]}],
        "timeDimensions": [{"dimension": "sales.created_at", "dateRange": ["2026-07-01", "2026-09-30"]}],
    })
    assert number(rows[0][1]) == pytest.approx(expected[0]["sales.revenue"], abs=0.01)
    assert not page.locator("#ask-sql-details").is_visible()  # SQL is for admins

    # Editing cannot widen it: a monthly breakdown still reads DACH only, and so does a filter on
    # another region.
    page.get_by_label("Granularity of Order Date").select_option("month")
    wait_updated(page)
    region = headers(page).index("Region")
    assert {r[region] for r in table(page)} == {"DACH"}
    ask(page, "revenue by region and channel")
    region = headers(page).index("Region")
    assert {r[region] for r in table(page)} == {"DACH"}
    page.get_by_role("button", name="Remove breakdown Region").click()
    wait_updated(page)
    page.get_by_label("Add a filter").select_option(label="Region")
    values = page.get_by_label("Values of Region (separate several with commas)")
    values.fill("France")
    values.dispatch_event("change")
    wait_updated(page)
    assert table(page) == [["No rows."]]
    page.screenshot(path="/tmp/ask_analyst.png", full_page=True)
    page.close()


def test_comparisons_join_the_table_and_the_chart(browser: Any, server: Server) -> None:
    from test_server import ADMIN_PASSWORD

    page, _ = sign_in(browser, server, "admin", ADMIN_PASSWORD)
    page.goto(f"{server.url}/ask/?today={TODAY}")
    ask(page, "revenue by region this year vs last year")
    columns = headers(page)
    assert columns[:2] == ["Region", "Revenue"] and columns[-1] == "Change", columns
    previous = load(server, {
        "measures": ["sales.revenue"], "dimensions": ["sales.region"],
        "timeDimensions": [{"dimension": "sales.created_at", "dateRange": ["2025-01-01", "2025-12-31"]}],
    })
    then = {r["sales.region"]: r["sales.revenue"] for r in previous}
    for region, now, before, change in table(page):
        assert number(before) == pytest.approx(then[region], abs=0.01)
        assert float(change.rstrip("%")) == pytest.approx((number(now) / then[region] - 1) * 100, abs=0.06)
    assert page.locator("#ask-chart[data-chart=bar] .barlayer .trace").count() == 2
    page.screenshot(path="/tmp/ask_compare.png", full_page=True)

    # The comparison follows edits: the total, then by quarter, each against the same span a year back.
    page.get_by_role("button", name="Remove breakdown Region").click()
    wait_updated(page)
    assert page.locator("#ask-chart[data-chart=number] .delta").count() == 1
    now, before, change = table(page)[0]
    assert number(before) == pytest.approx(sum(then.values()), abs=0.05)
    page.get_by_label("Granularity of Order Date").select_option("quarter")
    wait_updated(page)
    assert [r[0] for r in table(page)] == ["2026 Q1", "2026 Q2", "2026 Q3", "2026 Q4"]
    assert page.locator("#ask-comparison-label").inner_text() == "Compared with 2025-01-01 to 2025-12-31"
    earlier = page.locator("#ask-comparison-table tbody tr td:first-child").all_inner_texts()
    assert earlier == ["2025 Q1", "2025 Q2", "2025 Q3", "2025 Q4"]
    assert page.locator("#ask-chart[data-chart=line] .scatterlayer .trace").count() == 2
    assert "compared with 2025-01-01 to 2025-12-31" in page.locator("#ask-restatement").inner_text()
    page.screenshot(path="/tmp/ask_compare_line.png", full_page=True)
    page.get_by_role("button", name="Remove comparison with 2025-01-01 to 2025-12-31").click()
    wait_updated(page)
    assert not page.locator("#ask-comparison").is_visible()
    assert page.locator("#ask-chart[data-chart=line] .scatterlayer .trace").count() == 1

    ask(page, "share of revenue by channel")
    assert page.locator("#ask-chart[data-chart=pie] .slice").count() == len(table(page)) >= 2
    page.close()


def test_viewer_sees_no_hidden_members_and_only_their_region(browser: Any, server: Server) -> None:
    """On the sales view viewers see neither margins nor other regions: not in rows, nor in the menus."""
    page, _ = sign_in(browser, server, "vic", PASSWORD)
    page.goto(f"{server.url}/ask/?today={TODAY}")
    ask(page, "revenue by region")
    assert '"sales.region"' in page.locator("#ask-query-json").text_content()
    assert [r[0] for r in table(page)] == ["Nordics"]
    page.wait_for_function("() => document.querySelectorAll('#ask-add option').length > 3", timeout=30_000)
    offered = " ".join(page.locator("#ask-add option").all_inner_texts()).lower()
    assert page.locator("#ask-add option[value='sales.revenue']").count() == 0  # already in the query
    assert page.locator("#ask-add option[value='sales.gross_margin']").count() == 0
    assert "units sold" in offered or "quantity" in offered
    assert "margin" not in offered and "cost of goods" not in offered
    page.close()


def test_viewer_asking_for_margins_gets_none(browser: Any, server: Server) -> None:
    page, _ = sign_in(browser, server, "vic", PASSWORD)
    page.goto(f"{server.url}/ask/?today={TODAY}")
    ask(page, "gross margin by region")
    try:
        assert "margin" not in page.locator("#ask-restatement").inner_text().lower()
        if "Region" in headers(page):
            region = headers(page).index("Region")
            assert {r[region] for r in table(page)} <= {"Nordics"}
    finally:
        page.close()


def test_session_cookie_requests_that_a_foreign_page_could_send_are_refused(server: Server) -> None:
    """The page's fetches are JSON; what a cross-site form or a simple request can send is not run."""
    from test_server import ADMIN_PASSWORD

    client = httpx.Client(base_url=server.url, timeout=30)
    token = CSRF.search(client.get("/login/").text)
    assert token
    form = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token[1]}
    assert client.post("/login/", data=form).status_code == 302 and client.cookies.get("session")
    query = '{ load(query: {measures: ["sales.revenue"]}) { data } }'
    assert client.post("/graphql", json={"query": query}).status_code == 200
    body = json.dumps({"query": query})
    as_text = client.post("/graphql", content=body, headers={"content-type": "text/plain"})
    assert as_text.status_code == 415
    assert client.post("/graphql", data={"query": query}).status_code == 415
    # a link or <img> on another site: a cookie-only GET runs nothing, not even a query
    linked = client.get("/graphql", params={"query": query}, headers={"accept": "application/json"})
    assert linked.status_code == 401 and "cross-site" in linked.text
    # the page's own scripts may GET queries, never mutations
    own = {"accept": "application/json", "x-requested-with": "XMLHttpRequest"}
    mutation = client.get("/graphql", params={"query": "mutation { reloadModels { version } }"}, headers=own)
    assert mutation.status_code == 400 and "not allowed" in mutation.text
    client.close()


EVIL = '<img src=x onerror="window.__pwned=1"><b>bold</b>'


def test_server_text_is_shown_as_text(browser: Any, server: Server) -> None:
    """Member titles, values, narrative and suggestions hostile as HTML stay text (a stubbed `ask`,
    in this test only: the real one would not produce such titles from the demo model)."""
    from test_server import ADMIN_PASSWORD

    answer = {
        "question": EVIL, "query": {"measures": ["sales.revenue"], "dimensions": ["sales.region"]},
        "restatement": EVIL, "confidence": 0.5, "chart": "bar", "narrative": EVIL, "clarification": None,
        "data": [{"sales.region": EVIL, "sales.revenue": 1.5}, {"sales.region": "Plain", "sales.revenue": 2}],
        "columns": [
            {"key": "sales.region", "kind": "dimension", "title": EVIL, "shortTitle": EVIL, "type": "string",
             "format": None, "granularity": None},
            {"key": "sales.revenue", "kind": "measure", "title": "Revenue", "shortTitle": "Revenue",
             "type": "number", "format": None, "granularity": None},
        ],
        "alternatives": [{"query": {"measures": ["sales.revenue"]}, "restatement": EVIL},
                         {"clarification": EVIL, "suggestions": ["sales.revenue"]}],
        "titles": {"sales.revenue": EVIL, "sales.region": EVIL}, "comparison": None, "sql": EVIL,
    }

    def fulfil(route: Any) -> None:
        if "ask(" in (route.request.post_data or ""):
            body = json.dumps({"data": {"ask": answer}})
            route.fulfill(status=200, content_type="application/json", body=body)
        else:
            route.continue_()

    page, _ = sign_in(browser, server, "admin", ADMIN_PASSWORD)
    page.route("**/graphql", fulfil)
    page.goto(f"{server.url}/ask/")
    ask(page, "anything")
    assert page.locator("#ask-app img, #ask-app b, #ask-app script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#ask-restatement").inner_text() == EVIL
    assert page.locator("#ask-narrative").inner_text() == EVIL
    assert table(page)[0][0] == EVIL and headers(page)[0] == EVIL
    assert EVIL in page.locator("#ask-chips").inner_text()
    assert EVIL in page.locator("#ask-suggestions").inner_text()
    ticks = page.locator("#ask-chart .xtick text").all_text_contents()
    assert EVIL in ticks, ticks  # plotly draws the value literally, no bold, no link
    page.close()
