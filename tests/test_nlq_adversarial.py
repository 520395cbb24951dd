"""Trying to break `ask`: leaks past the caller's policies, hostile input, confident wrong numbers, slow
questions.

Tests that pass are regression tests of what held. Each `xfail(strict=True)` is a real problem found
(its reason says what and how it should behave); when it is fixed the test passes and strict xfail
fails, so move it to the normal tests then. Expected numbers come from plain SQL on the demo DuckDB
file, never from the matcher.

Paths: `headless_bi.nlq.answer.ask` on `govern(model, security).model` (as tests/test_nlq.py), the
GraphQL field through `Runtime.ask` in-process, and the real server of tests/test_security_paths.py
(its fixtures and helpers are reused from there) on the multi-tenant TPC-H model.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_security_paths import ASK, gql, models, server, sql, warehouse  # noqa: F401 (fixtures)

from headless_bi.errors import QueryError
from headless_bi.nlq.answer import CONFIDENT, ask
from headless_bi.nlq.index import get_index
from headless_bi.nlq.proposer import Grounding, MatcherProposer
from headless_bi.security import SecurityContext
from headless_bi.security.govern import govern
from headless_bi.semantic.loader import load_models
from headless_bi.service import run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "semantic_models" / "demo"
SECURE = ROOT / "tests" / "models" / "secure"
TODAY = date(2026, 12, 4)
ADMIN = SecurityContext.create("root", ["Admin"])
DACH = SecurityContext.create("anna", ["Analyst"], {"region": "DACH"})
FRANCE = SecurityContext.create("felix", ["Analyst"], {"region": "France"})
VIEWER = SecurityContext.create("vic", ["Viewer"], {"region": "DACH"})
# What a DACH caller must never get: the other regions, their stores and cities.
OTHER_REGIONS = ("Benelux", "France", "Nordics", "UK & Ireland")
OTHER_STORES = ("Amsterdam", "Brussels", "Paris", "Lyon", "Stockholm", "Copenhagen", "London", "Manchester",
                "Dublin")  # fmt: skip
# Hidden from a Viewer on the `sales` view (and every cube member is closed to them).
HIDDEN = (
    "gross_margin",
    "cost_of_goods_sold",
    "unit_cost",
    "products.cost",
    "Gross Margin",
    "Cost of Goods Sold",
)
REVENUE_SQL = (
    "SELECT sum(i.quantity * i.unit_price * (1 - i.discount)) FROM order_items i "
    "JOIN orders o ON i.order_id = o.id "
)


# --- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Any:
    return load_models(DEMO)


def answer(model: Any, wh: DuckDBWarehouse, question: str, security: SecurityContext | None = None) -> Any:
    governed = model if security is None else govern(model, security).model

    def run(q: dict[str, Any]) -> Any:
        return run_query(model, wh, q, security=security)

    key = None if security is None else security.policy_key
    return ask(question, model=governed, execute=run, probe=run, today=TODAY, context_key=key)


def shown(got: Any, security: SecurityContext | None = None) -> str:
    """Everything `ask` sends the caller except their own question (which may be echoed); compiled
    SQL only to admins, as GraphQL does."""
    doc = got.to_json_dict(include_sql=security is None or security.is_admin)
    doc.pop("question")
    return json.dumps(doc, default=str, ensure_ascii=False)


def number(wh: DuckDBWarehouse, sql_text: str) -> float:
    value = wh.execute(sql_text).column(0)[0].as_py()
    return float(value or 0)


def only_value(got: Any) -> float:
    [row] = got.data
    [value] = [v for k, v in row.items() if k.endswith(("revenue", "average_order_value"))]
    return float(value)


@pytest.fixture(scope="module")
def graphql(demo_wh: DuckDBWarehouse) -> Any:
    """The real GraphQL `ask` field in-process (Runtime.ask), as a given caller."""
    from headless_bi.graphql.context import make_context
    from headless_bi.graphql.schema import build_schema
    from headless_bi.runtime import Runtime, Settings

    settings = Settings(models=str(DEMO), warehouse=demo_wh.path, audit=False)
    runtime = Runtime(settings, demo_wh, load_models(DEMO))
    schema = build_schema(runtime.model, settings)
    doc = (
        'query Ask($q: String!) { ask(question: $q, today: "2026-12-04") { query restatement confidence '
        "data chart narrative alternatives clarification titles comparison sql } }"
    )

    def run(question: str, security: SecurityContext | None = DACH) -> Any:
        context = make_context(runtime, security=security)
        return asyncio.run(schema.execute(doc, variable_values={"q": question}, context_value=context))

    return run


# --- 1. security: hidden members, masked values, other regions ---------------------------------------

VIEWER_PROBES = [
    "gross margin by region", "gross margn % by category", "grossmargin", "gross_margin", "GROSS MARGIN",
    "order_items.gross_margin", "sales.gross_margin", "sales.cost_of_goods_sold by month",
    "cogs by month", "cost of sales by store", "product cost by brand", "margin rate by category",
    "profitability by store", "contribution by channel", "gross profit this year vs last year",
    "share of gross margin by region", "what is the unit cost of products", "products.cost by category",
    "revenue minus cost of goods sold by region", "top 5 products by margin in 2025",
    '{"measures": ["order_items.gross_margin"], "dimensions": ["sales.region"]}',
    "SELECT sum(unit_cost) FROM order_items", "margin' OR 1=1 --",
]  # fmt: skip


@pytest.mark.parametrize("question", VIEWER_PROBES)
def test_viewer_never_gets_or_hears_of_hidden_margins(
    demo: Any, demo_wh: DuckDBWarehouse, question: str
) -> None:
    got = answer(demo, demo_wh, question, VIEWER)
    text = shown(got)
    for hidden in HIDDEN:
        assert hidden not in text, (question, hidden, text[:400])
    for row in got.data:
        for key, value in row.items():
            if key.endswith("region"):
                assert value == "DACH", row


SALES_PROBES = [
    "revenue by region", "revenue by store", "revenue in Paris", "revenue for the Benelux region",
    "revenue in Nordics vs DACH", "share of revenue by region", "which region has the most revenue",
    "revenue where region is not DACH", "revenue by store country", "top 5 stores by revenue",
    "revenue by region this year vs last year", "revenue by store city in 2025 vs 2024",
    "revenu in Pariss", "revenue London Oxford Street", "units sold in Stockholm Drottninggatan",
    '{"filters": [{"member": "sales.region", "operator": "equals", "values": ["France"]}]}',
    "revenue where region = 'France' OR 1=1",
]  # fmt: skip


@pytest.mark.parametrize("question", SALES_PROBES)
def test_analyst_gets_only_their_regions_sales(demo: Any, demo_wh: DuckDBWarehouse, question: str) -> None:
    """On the governed `sales` view a DACH analyst's answer — rows, comparison, narrative,
    alternatives, suggestions — holds nothing of another region."""
    got = answer(demo, demo_wh, question, DACH)
    text = shown(got)
    for other in OTHER_REGIONS[:1] + OTHER_REGIONS[2:] + OTHER_STORES:
        assert other not in text, (question, other, text[:400])
    rows = got.data + (got.comparison["data"] if got.comparison else [])
    for row in rows:
        if "sales.region" in row:
            assert row["sales.region"] == "DACH", row


def test_index_is_per_caller_admin_then_two_analysts(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    """The admin's index (every value) is built first, then two analysts of different regions ask
    one after the other: each gets their own values and rows, never the previous caller's."""
    admin = answer(demo, demo_wh, "revenue in Paris", ADMIN)
    assert admin.query["filters"][0]["values"] == ["Paris"]
    paris = number(demo_wh, REVENUE_SQL + "JOIN stores s ON o.store_id = s.id WHERE s.city = 'Paris'")
    assert only_value(admin) == pytest.approx(paris, rel=1e-9)

    dach = answer(demo, demo_wh, "revenue in Paris", DACH)
    assert "Paris" not in shown(dach)
    french = answer(demo, demo_wh, "revenue in Paris", FRANCE)
    assert french.query["filters"][0]["values"] == ["Paris"]
    assert only_value(french) == pytest.approx(paris, rel=1e-9)
    again = answer(demo, demo_wh, "revenue by store", DACH)
    assert {r["sales.stores_name"] for r in again.data} == {
        "Berlin Mitte",
        "Munich Marienplatz",
        "Zurich Bahnhofstrasse",
    }

    def values(security: SecurityContext) -> set[str]:
        model = govern(demo, security).model
        index = get_index(
            model, lambda q: run_query(demo, demo_wh, q, security=security), security.policy_key
        )
        return {v.value for ves in index.values.values() for v in ves if v.entry.path == "sales.stores_city"}

    assert values(DACH) == {"Berlin", "Munich", "Zurich"}
    assert values(FRANCE) == {"Paris", "Lyon"}


@pytest.mark.parametrize(
    "question", ["orders by region", "footfall by region", "orders by store", "visits by store"]
)
def test_analyst_gets_only_their_regions_orders_visits_customers(
    demo: Any, demo_wh: DuckDBWarehouse, question: str
) -> None:
    got = answer(demo, demo_wh, question, DACH)
    text = json.dumps(got.data, ensure_ascii=False)
    for other in OTHER_REGIONS + OTHER_STORES:
        assert other not in text, (question, other, text[:300])


def test_real_graphql_ask_as_analyst_and_viewer(graphql: Any) -> None:
    """The GraphQL path (Runtime.ask): no SQL for non-admins, DACH rows only, no hidden member."""
    body = graphql("share of revenue by store this year vs last year", DACH)
    assert body.errors is None
    got = body.data["ask"]
    assert got["sql"] is None
    text = json.dumps(got, ensure_ascii=False)
    for other in OTHER_STORES:
        assert other not in text
    body = graphql("gross margin by region vs last year", VIEWER)
    assert body.errors is None
    text = json.dumps(body.data["ask"], ensure_ascii=False)
    for hidden in HIDDEN:
        assert hidden not in text


@pytest.fixture(scope="module")
def tpch(warehouse: Path) -> Any:  # noqa: F811 (test_security_paths' fixture)
    wh = DuckDBWarehouse(str(warehouse), read_only=True)
    yield load_models(SECURE), wh
    wh.close()


TPCH_REGIONS = ("AFRICA", "AMERICA", "ASIA", "MIDDLE EAST")


@pytest.mark.parametrize(
    "question",
    [
        "customers by region", "revenue in ASIA", "customers in AMERICA", "customer phone numbers",
        "customer.phone", "customers whose phone is 25-989-741-2988", "balance by segment",
        "account balance by region", "acctbal", "names of wealthy customers", "total price of orders",
        "orders total price by region", "revenue by tenant", "share of revenue by region",
        "revenue for asian customers vs european customers",
    ],
)  # fmt: skip
def test_tpch_analyst_and_viewer_get_masks_and_their_region(tpch: Any, question: str) -> None:
    model, wh = tpch
    for security in (
        SecurityContext.create("eve", ["Analyst"], {"region": "EUROPE"}),
        SecurityContext.create("val", ["Viewer"], {"region": "EUROPE"}),
    ):
        got = answer(model, wh, question, security)
        text = shown(got, security)
        for other in TPCH_REGIONS:
            assert other not in text, (security.roles, question, other)
        for hidden in ("orders_total_price", "c_phone", "c_acctbal", "sales.tenant", "customer.tenant"):
            assert hidden not in text, (security.roles, question, hidden)
        for row in got.data:
            if "customer.phone" in row:
                assert row["customer.phone"].startswith("***-"), row
            if "Viewer" in security.roles:
                assert "customer.name" not in row and "customer.acctbal" not in row
                if "customer.balance" in row:
                    assert row["customer.balance"] == -1, row


def test_real_server_ask_two_analysts_and_a_viewer(server: Any, sql: Any) -> None:  # noqa: F811
    """The real server: EUROPE's then ASIA's analyst name the other's region; the viewer asks for
    masked and hidden customer members."""
    for user, mine, theirs in [
        ("eve", "EUROPE", "ASIA"),
        ("ash", "ASIA", "EUROPE"),
        ("eve", "EUROPE", "ASIA"),
    ]:
        body = gql(server, user, ASK, {"q": f"revenue by region in {theirs} vs {mine}"})
        assert not body.get("errors"), body
        for row in body["data"]["ask"]["data"]:
            assert row.get("sales.region", mine) == mine, (user, row)
        assert theirs not in json.dumps(body["data"]["ask"]["data"])
    body = gql(server, "val", ASK, {"q": "account balance and phone of customers by region"})
    assert not body.get("errors"), body
    for row in body["data"]["ask"]["data"]:
        assert row.get("customer.balance", -1) == -1 and "customer.phone" not in row, row


# --- 2. robustness: never a traceback, never INTERNAL -------------------------------------------------

FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "REVENUE") + " by region"
ODD = [
    "收入 按 地区", "revenue 📈 by region 🚀", "الإيرادات حسب المنطقة", "revenue by region \u202e noiger",
    "revenue\x00by region", "\u200b\u200b revenue", "r" * 500, ("revenue by region " * 30)[:500],
    "12345", "1 2 3 4 5", "the of and a to", "?", "%%%%%%", "🙂🙂🙂", "top 99999999999 products by revenue",
    "top -5 products by revenue", "revenue on 2026-13-45", "revenue last 0 months", "revenue since 3000",
    "revenue in 0001", "revenue in Q5 2024", "orders where discount over 150%", "revenue over 1e400",
    "revenue " + "revenue " * 60, "by by by by by", "vs vs vs", "revenue between feb 30 and feb 31",
    "\\'; DROP TABLE orders; --", "{{ CUBE }} revenue", "${CUBE}.revenue", "top 1,000,000,000,000 stores",
    "customers with more than 1e999 orders", "revenue at least 5k%", FULL_WIDTH,
    "revenue yesterday vs the day before vs last year", "revenue since 0000-00-00", "top 3.5 products",
]  # fmt: skip


@pytest.mark.parametrize("question", ODD)
def test_odd_questions_get_an_answer_or_a_clarification(graphql: Any, question: str) -> None:
    body = graphql(question)
    if body.errors:
        assert [e.extensions["code"] for e in body.errors] == ["BAD_QUERY"], body.errors
    else:
        got = body.data["ask"]
        assert got["query"] is not None or got["clarification"]


def test_empty_and_too_long_are_bad_query(graphql: Any) -> None:
    for question in ("", "   ", "revenue " * 70):
        body = graphql(question)
        assert body.errors and body.errors[0].extensions["code"] == "BAD_QUERY", question


@pytest.mark.parametrize(
    "question",
    [
        "revenue last 99999999 months",
        "revenue last 1000000 years",
        "revenue last 99999999999999999999 days",
        "revenue for the last 2147483648 weeks",
    ],
)
def test_huge_relative_periods_are_bad_query(graphql: Any, question: str) -> None:
    body = graphql(question)
    assert not body.errors or [e.extensions["code"] for e in body.errors] == ["BAD_QUERY"], body.errors


def test_real_server_huge_period_is_bad_query(server: Any) -> None:  # noqa: F811
    body = gql(server, "eve", ASK, {"q": "revenue last 99999999 months"})
    assert not body.get("errors") or body["errors"][0]["extensions"]["code"] == "BAD_QUERY", body


@pytest.mark.parametrize(
    "question",
    [
        "top 0 products by revenue",
        "revenue on 2026-02-30",
        "revenue in H3 2025",
    ],
)
def test_impossible_ranks_and_dates_are_not_answered_confidently(
    demo: Any, demo_wh: DuckDBWarehouse, question: str
) -> None:
    from headless_bi.errors import QueryError

    try:
        got = answer(demo, demo_wh, question)
    except QueryError as error:  # BAD_QUERY naming the impossible part is an answer too
        assert error.message
        return
    assert got.query is None or got.confidence < CONFIDENT


# --- 3. confident wrong numbers -----------------------------------------------------------------------


def confident(got: Any) -> bool:
    return got.query is not None and got.confidence >= CONFIDENT and not got.alternatives


def test_top_thousand_customers(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo, demo_wh, "top 1,000 customers by revenue")
    assert got.query["limit"] == 1000 and got.query.get("dimensions"), got.query


def test_revenue_is_dated_by_its_order_date(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo, demo_wh, "revenue on black friday 2025")
    [td] = got.query["timeDimensions"]
    start, end = td["dateRange"]
    want = number(demo_wh, REVENUE_SQL + f"WHERE o.created_at >= DATE '{start}' AND "
                           f"o.created_at < DATE '{end}' + INTERVAL 1 DAY")  # fmt: skip
    assert only_value(got) == pytest.approx(want, rel=1e-9)


def test_revenue_excluding_cancelled(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo, demo_wh, "revenue excluding cancelled orders in 2025")
    where = "WHERE o.status <> 'cancelled' AND o.created_at >= DATE '2025-01-01' "
    where += "AND o.created_at < DATE '2026-01-01'"
    want = number(demo_wh, REVENUE_SQL + where)
    assert only_value(got) == pytest.approx(want, rel=1e-9)


def test_percent_filter_lands_on_a_rate(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo, demo_wh, "revenue of orders with discount over 10%")
    want = number(demo_wh, REVENUE_SQL + "WHERE o.discount > 0.1")
    assert got.query["measures"] in (["sales.revenue"], ["order_items.revenue"]), got.query
    assert only_value(got) == pytest.approx(want, rel=1e-9)


def test_revenue_per_order(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo, demo_wh, "revenue per order")
    want = number(demo_wh, REVENUE_SQL) / number(demo_wh, "SELECT count(DISTINCT order_id) FROM order_items")
    assert only_value(got) == pytest.approx(want, rel=1e-6)


def test_online_orders_is_a_filter(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo, demo_wh, "revenue of online orders in 2025")
    want = number(demo_wh, REVENUE_SQL + "WHERE o.channel IN ('web', 'app') AND o.created_at >= DATE "
                           "'2025-01-01' AND o.created_at < DATE '2026-01-01'")  # fmt: skip
    assert only_value(got) == pytest.approx(want, rel=1e-9)


def test_reversed_year_range(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo, demo_wh, "revenue between 2026 and 2020")
    assert not confident(got) or got.query["timeDimensions"][0]["dateRange"] == ["2020-01-01", "2026-12-31"]


def test_analyst_naming_another_region_is_not_answered_confidently(
    demo: Any, demo_wh: DuckDBWarehouse
) -> None:
    got = answer(demo, demo_wh, "revenue in France", DACH)
    assert not confident(got) or got.data == [] or "France" in got.restatement, got.restatement


def test_viewer_profit_is_not_answered_as_revenue(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo, demo_wh, "profit by region", VIEWER)
    assert not confident(got), (got.query, got.confidence)


def test_unindexed_customer_name_is_not_dropped_silently(tpch: Any) -> None:
    model, wh = tpch
    got = answer(
        model,
        wh,
        "customer Customer#000000001",
        SecurityContext.create("e", ["Analyst"], {"region": "EUROPE"}),
    )
    assert not confident(got), (got.query, got.confidence)


def test_confident_answers_that_hold(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    """Plausible questions the matcher gets right, checked against SQL."""
    got = answer(demo, demo_wh, "how many orders were cancelled in 2025")
    want = number(demo_wh, "SELECT count(*) FROM orders WHERE status = 'cancelled' AND "
                           "created_at >= DATE '2025-01-01' AND created_at < DATE '2026-01-01'")  # fmt: skip
    assert confident(got) and list(got.data[0].values()) == [want]
    got = answer(demo, demo_wh, "revenue in Paris")
    want = number(demo_wh, REVENUE_SQL + "JOIN stores s ON o.store_id = s.id WHERE s.city = 'Paris'")
    assert confident(got) and only_value(got) == pytest.approx(want, rel=1e-9)
    got = answer(demo, demo_wh, "revenue in december 2025 vs december 2024")
    want = number(
        demo_wh, REVENUE_SQL + "WHERE o.created_at >= DATE '2024-12-01' AND o.created_at < DATE '2025-01-01'"
    )
    assert got.comparison["data"][0]["sales.revenue"] == pytest.approx(want, rel=1e-9)


# --- 4. performance -------------------------------------------------------------------------------------


def test_no_question_takes_a_second_to_match(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    """Matching only (no query run) on a warm index: new 500-character questions, many values, many
    words the model has no name for (each new word is embedded once)."""
    index = get_index(demo, lambda q: run_query(demo, demo_wh, q), None)
    grounding = Grounding(demo, index, TODAY)
    proposer = MatcherProposer()
    proposer.propose("revenue by region", grounding)
    rng = random.Random(7)

    def words(n: int, k: int) -> str:
        return " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(k)) for _ in range(n))

    countries = "Germany France Austria Belgium Denmark Finland Ireland Luxembourg Netherlands Norway Sweden"
    questions = [
        words(125, 3), words(83, 5), words(12, 40), "revenue " + words(120, 3),
        "revenue for " + " or ".join(countries.split() * 4),
        "revenue by " + " and ".join(["region", "store", "city", "category", "brand", "segment"] * 5),
        "revenue between " + " and ".join(["jan 2025"] * 50),
        " ".join(["revenue", "units", "orders", "visits", "sessions", "discount", "customers", "aov"] * 8),
    ]  # fmt: skip
    slow = []
    for question in questions:
        started = time.perf_counter()
        proposer.propose(question[:500], grounding)
        # uncontended this is 0.1-0.4 s (each new word embedded once); 3 s leaves room for a busy CI box
        if (elapsed := time.perf_counter() - started) > 3.0:
            slow.append((question[:40], round(elapsed, 2)))
    assert not slow
    times = []
    for _ in range(21):
        started = time.perf_counter()
        proposer.propose("top 5 products by revenue in 2025 vs 2024", grounding)
        times.append(time.perf_counter() - started)
    assert sorted(times)[10] < 0.05  # p50 target


def test_question_errors_are_query_errors(demo: Any, demo_wh: DuckDBWarehouse) -> None:
    with pytest.raises(QueryError):
        answer(demo, demo_wh, "\n\t ")
