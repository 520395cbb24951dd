"""Asking in plain language: the parts (time phrases, restatement, narrative), the question sets'
accuracy, the GraphQL `ask` field and the CLI, and that `ask` is governed like every other query.

Expected numbers come from plain SQL on the same DuckDB file or from the hand-written queries of
tests/nlq_questions, never from the matcher itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from headless_bi.nlq.answer import CONFIDENT, ask
from headless_bi.nlq.evaluate import Report, evaluate, load_question_set
from headless_bi.nlq.narrative import fmt
from headless_bi.nlq.restate import restate
from headless_bi.nlq.timeparse import parse_time
from headless_bi.security import SecurityContext
from headless_bi.security.govern import govern
from headless_bi.semantic.loader import load_models
from headless_bi.service import run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse
from headless_bi.warehouse.files import load_files

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "tests" / "nlq_questions"
DEMO = ROOT / "semantic_models" / "demo"
TODAY = date(2026, 12, 4)
# Execution accuracy the built-in matcher reaches on each question set (see the closing note of the
# issue); a change that lowers it fails here rather than going unnoticed.
MIN_EXECUTION = {"demo": 0.97, "tpch": 0.92, "jaffle_shop": 0.96}
MIN_DEV = 0.95  # tests/nlq_questions/dev: written late, looked at while tuning
MIN_HELD_OUT = 0.95
# Review questions still answered wrongly with confidence (see the closing note): the verb of
# the counted entity's other cube ("customers who ordered online"), a
# qualifier split from its member ("supplier with the highest account balance").
KNOWN_CONFIDENT_MISSES = {"rdemo-015", "rtpch-007"}


@pytest.fixture(scope="module")
def demo_model() -> Any:
    return load_models(DEMO)


def answer(model: Any, warehouse: DuckDBWarehouse, question: str, security: Any = None) -> Any:
    governed = model if security is None else govern(model, security).model

    def run(q: dict[str, Any]) -> Any:
        return run_query(model, warehouse, q, security=security)

    key = None if security is None else security.policy_key
    return ask(question, model=governed, execute=run, probe=run, today=TODAY, context_key=key)


def scalar(warehouse: DuckDBWarehouse, sql: str) -> Any:
    return warehouse.execute(sql).column(0)[0].as_py()


# --- time phrases --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("revenue last quarter", "2026-07-01", "2026-09-30"),
        ("orders last 3 months", "2026-09-01", "2026-11-30"),
        ("sales this year", "2026-01-01", "2026-12-31"),
        ("revenue ytd", "2026-01-01", "2026-12-04"),
        ("revenue in q2 2024", "2024-04-01", "2024-06-30"),
        ("orders since march", "2026-03-01", "2026-12-04"),
        ("orders last week", "2026-11-23", "2026-11-29"),
        ("units on 14 aug 2026", "2026-08-14", "2026-08-14"),
        ("revenue between january 2025 and march 2025", "2025-01-01", "2025-03-31"),
    ],
)
def test_time_phrases(text: str, start: str, end: str) -> None:
    period = parse_time(text, TODAY).period
    assert period is not None and period.as_range() == [start, end]


def test_comparisons_get_their_baseline() -> None:
    spec = parse_time("revenue this year vs last year", TODAY)
    assert spec.compare_to is not None and spec.compare_to.as_range() == ["2025-01-01", "2025-12-31"]
    spec = parse_time("orders last month compared to the month before", TODAY)
    assert spec.compare_to is not None and spec.compare_to.as_range() == ["2026-10-01", "2026-10-31"]


# --- restatement and narrative -------------------------------------------------------------------


def test_restatement_reads_the_query_back() -> None:
    query = {
        "measures": ["sales.revenue"], "dimensions": ["sales.region"],
        "timeDimensions": [{"dimension": "sales.created_at", "dateRange": ["2024-07-01", "2024-09-30"]}],
    }  # fmt: skip
    titles = {"sales.revenue": "Revenue", "sales.region": "Customer region", "sales.created_at": "Order date"}
    assert restate(query, titles) == "Revenue, by customer region, for 2024-07-01 to 2024-09-30"


def test_number_formats() -> None:
    assert fmt(1_234_567.8) == "1.23M"
    assert fmt(0.123, "percent") == "12.3%"
    assert fmt(1500, "currency") == "1.5K"  # no symbol: the model does not say which currency
    assert fmt(None) == "no value"


# --- answers against plain SQL --------------------------------------------------------------------


def test_revenue_by_region_last_quarter_matches_sql(demo_model: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo_model, demo_wh, "revenue by region last quarter")
    assert got.confidence >= CONFIDENT and got.chart == "bar"
    table = demo_wh.execute(
        "SELECT g.name AS region, sum(i.quantity * i.unit_price * (1 - i.discount)) AS revenue "
        "FROM order_items i JOIN orders o ON i.order_id = o.id JOIN stores s ON o.store_id = s.id "
        "JOIN regions g ON s.region_id = g.id "
        "WHERE o.created_at >= TIMESTAMP '2026-07-01' AND o.created_at < TIMESTAMP '2026-10-01' GROUP BY 1"
    ).to_pylist()
    expected = {r["region"]: float(r["revenue"]) for r in table}
    rows = {r[k]: r["sales.revenue"] for r in got.data for k in r if k != "sales.revenue"}
    assert rows.keys() == expected.keys()
    for region, value in expected.items():
        assert rows[region] == pytest.approx(value, rel=1e-9)
    top = max(expected, key=expected.get)
    assert got.narrative.startswith(f"{top} leads")


def test_top_n_ranks_and_limits(demo_model: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo_model, demo_wh, "top 3 products by revenue in 2025")
    assert got.query["limit"] == 3 and list(got.query["order"].values()) == ["desc"]
    values = [r["sales.revenue"] for r in got.data]
    assert len(values) == 3 and values == sorted(values, reverse=True)


def test_excluding_a_filtered_count_filters_its_rows_out(
    demo_model: Any, demo_wh: DuckDBWarehouse
) -> None:
    """'excluding returns': the rows `returned_count` counts are left out (status != 'returned'), the
    count is not added as a second measure."""
    got = answer(demo_model, demo_wh, "revenue excluding returns in 2025")
    assert got.query["measures"] == ["sales.revenue"] and got.confidence >= 0.6
    not_returned = {"member": "sales.status", "operator": "notEquals", "values": ["returned"]}
    assert got.query["filters"] == [not_returned]
    expected = scalar(demo_wh, """
        SELECT sum(i.quantity * i.unit_price * (1 - i.discount))
        FROM order_items i JOIN orders o ON i.order_id = o.id
        WHERE o.status <> 'returned' AND o.created_at >= TIMESTAMP '2025-01-01'
          AND o.created_at < TIMESTAMP '2026-01-01'""")  # fmt: skip
    assert got.data[0]["sales.revenue"] == pytest.approx(float(expected), rel=1e-9)


def test_what_percent_is_the_models_rate(demo_model: Any, demo_wh: DuckDBWarehouse) -> None:
    """'what percent of orders were returned': the model's return rate (returned_count / count), not
    the count of returned orders labelled as a share."""
    got = answer(demo_model, demo_wh, "what percent of orders were returned in 2025")
    assert got.query["measures"] == ["orders_overview.return_rate"] and "filters" not in got.query
    expected = scalar(demo_wh, """
        SELECT 1.0 * count(*) FILTER (WHERE status = 'returned') / count(*) FROM orders
        WHERE created_at >= TIMESTAMP '2025-01-01' AND created_at < TIMESTAMP '2026-01-01'""")
    assert got.data[0]["orders_overview.return_rate"] == pytest.approx(float(expected), rel=1e-9)


def test_a_cue_that_cannot_be_carried_out_is_hedged(demo_model: Any, demo_wh: DuckDBWarehouse) -> None:
    """'excluding discounted orders' (a segment that is not one value) cannot be negated in a query:
    the answer says so instead of giving the discounted orders' revenue with confidence."""
    got = answer(demo_model, demo_wh, "revenue excluding discounted orders this year")
    assert got.confidence < 0.6
    assert any("could not apply 'excluding" in a.get("clarification", "") for a in got.alternatives)


def test_comparison_runs_both_periods(demo_model: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo_model, demo_wh, "orders this year vs last year")
    assert got.comparison is not None
    [td] = got.comparison["query"]["timeDimensions"]
    assert td["dateRange"] == ["2025-01-01", "2025-12-31"]  # "this year" is the calendar year, as in Cube
    before = scalar(demo_wh, "SELECT count(*) FROM orders WHERE created_at >= TIMESTAMP '2025-01-01' "
                             "AND created_at < TIMESTAMP '2026-01-01'")  # fmt: skip
    assert list(got.comparison["data"][0].values()) == [before]


def test_nonsense_asks_back_instead_of_guessing(demo_model: Any, demo_wh: DuckDBWarehouse) -> None:
    got = answer(demo_model, demo_wh, "what is the weather like in spring")
    assert got.query is None and got.data == []
    assert got.clarification and got.alternatives


def test_empty_and_oversized_questions_are_clean_errors(demo_model: Any, demo_wh: DuckDBWarehouse) -> None:
    from headless_bi.errors import QueryError

    with pytest.raises(QueryError, match="empty"):
        answer(demo_model, demo_wh, "   ")
    with pytest.raises(QueryError, match="longer than"):
        answer(demo_model, demo_wh, "revenue " * 200)


# --- governed: hidden members and other regions' rows ----------------------------------------------


@pytest.fixture(scope="module")
def views_only(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The demo with its cubes private, as Cube advises when policies live on views: then the
    views are the only way in, and a Viewer's hidden margins cannot be reached through a cube."""
    folder = tmp_path_factory.mktemp("views_only")
    for path in DEMO.glob("*.yml"):
        text = path.read_text(encoding="utf-8")
        if path.name != "views.yml":
            text = text.replace("    sql_table:", "    public: false\n    sql_table:")
        (folder / path.name).write_text(text, encoding="utf-8")
    return load_models(folder)


def test_viewer_never_gets_hidden_margin(views_only: Any, demo_wh: DuckDBWarehouse) -> None:
    viewer = SecurityContext.create("v", ["Viewer"], {"region": "DACH"})
    for question in ("gross margin by region", "gross margn % by category", "cost of goods sold in 2025"):
        got = answer(views_only, demo_wh, question, viewer)
        text = json.dumps(got.to_json_dict(include_sql=True)).lower()
        # the asker's own words may be echoed back ("nothing in the model for: margin"); no member is
        for hidden in ("gross_margin", "cost_of_goods_sold", "unit_cost"):
            assert hidden not in text
    admin = answer(views_only, demo_wh, "gross margin by region")
    assert admin.query["measures"] == ["sales.gross_margin"]


def test_analyst_sees_only_their_region(views_only: Any, demo_wh: DuckDBWarehouse) -> None:
    analyst = SecurityContext.create("a", ["Analyst"], {"region": "DACH"})
    got = answer(views_only, demo_wh, "revenue by region", analyst)
    assert [r["sales.region"] for r in got.data] == ["DACH"]
    # naming another region's value: it is not in the analyst's index, so nothing of it comes back
    other = answer(views_only, demo_wh, "revenue in France by store", analyst)
    text = json.dumps(other.to_json_dict(include_sql=True))
    assert "Paris" not in text and "Lyon" not in text
    dach = scalar(
        demo_wh,
        "SELECT sum(i.quantity * i.unit_price * (1 - i.discount)) FROM order_items i "
        "JOIN orders o ON i.order_id = o.id JOIN stores s ON o.store_id = s.id "
        "JOIN regions g ON s.region_id = g.id WHERE g.name = 'DACH'",
    )
    assert got.data[0]["sales.revenue"] == pytest.approx(float(dach), rel=1e-9)


# --- the question sets -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def question_warehouses(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, demo_wh: DuckDBWarehouse
) -> dict[str, DuckDBWarehouse]:
    shared = request.getfixturevalue("shared_data")
    base = tmp_path_factory.mktemp("nlq_sets")
    out = {"demo": demo_wh}
    for stem, files in (
        ("tpch", sorted((shared / "tpch_sf0.1").glob("*.parquet"))),
        ("jaffle_shop", sorted((shared / "jaffle_shop" / "classic").glob("raw_*.csv"))),
    ):
        path = str(base / f"{stem}.duckdb")
        load_files(files, path)
        out[stem] = DuckDBWarehouse(path, read_only=True)
    return out


def test_items_worth_more_than_an_amount_each_filter_each_item(
    question_warehouses: dict[str, DuckDBWarehouse],
) -> None:
    """'orders worth more than 400k each' filters single orders by their total, then counts them;
    the number of orders is never compared with 400,000."""
    model, warehouse = load_models(ROOT / "semantic_models" / "tpch"), question_warehouses["tpch"]
    got = answer(model, warehouse, "how many orders were worth more than 400k each?")
    assert got.query["measures"] == ["orders.count"]
    by_order = {"member": "orders.totalprice_value", "operator": "gt", "values": ["400000"]}
    assert got.query["filters"] == [by_order]
    expected = scalar(warehouse, "SELECT count(*) FROM orders WHERE o_totalprice > 400000")
    assert expected > 0 and got.data[0]["orders.count"] == expected


@pytest.mark.parametrize("stem", sorted(MIN_EXECUTION))
def test_question_set_accuracy(stem: str, question_warehouses: dict[str, DuckDBWarehouse]) -> None:
    report = evaluate(load_question_set(QUESTIONS / f"{stem}.yaml", ROOT), question_warehouses[stem])
    print(f"\n== {stem}\n{report.summary()}")
    assert report.rate("executed") >= MIN_EXECUTION[stem], report.summary()
    # a miss is answered with alternatives, a question back or low confidence: never as a sure number
    assert not report.confident_misses, report.summary()


def folder_report(folders: tuple[str, ...], warehouses: dict[str, DuckDBWarehouse]) -> Report:
    """One report over the three models' files of each folder in tests/nlq_questions."""
    outcomes = []
    for folder in folders:
        for stem in sorted(MIN_EXECUTION):
            path = QUESTIONS / folder / f"{stem}.yaml"
            outcomes += evaluate(load_question_set(path, ROOT), warehouses[stem]).outcomes
    return Report(outcomes)


def test_dev_set_accuracy(question_warehouses: dict[str, DuckDBWarehouse]) -> None:
    report = folder_report(("dev",), question_warehouses)
    print(f"\n== dev\n{report.summary()}")
    assert report.rate("executed") >= MIN_DEV and not report.confident_misses, report.summary()


def test_review_set_is_never_answered_wrongly_with_confidence(
    question_warehouses: dict[str, DuckDBWarehouse],
) -> None:
    """Questions a reviewer found answered wrongly with high confidence (tests/nlq_questions/review):
    each is now answered right, or hedged (low confidence, alternatives or a question back), but for
    the few listed in KNOWN_CONFIDENT_MISSES."""
    report = folder_report(("review",), question_warehouses)
    print(f"\n== review\n{report.summary()}")
    still = {o.id for o in report.confident_misses}
    assert still == KNOWN_CONFIDENT_MISSES, report.summary()  # a fix removes its id from the list


def test_held_out_accuracy(question_warehouses: dict[str, DuckDBWarehouse]) -> None:
    """227 questions written after the matcher was tuned, by people who never saw it: how well it
    generalises. Only the overall rate is asserted; the sets are not for tuning (see their READMEs)."""
    report = folder_report(("holdout", "holdout2", "holdout3"), question_warehouses)
    rate = report.rate("executed")
    print(f"\nheld out: {len(report.outcomes)} questions, execution accuracy {rate:.1%}")
    assert rate >= MIN_HELD_OUT
    assert not report.confident_misses, report.summary()


# --- entry points ----------------------------------------------------------------------------------


def test_graphql_ask(demo_wh: DuckDBWarehouse, tmp_path: Path) -> None:
    from headless_bi.graphql.context import make_context
    from headless_bi.graphql.schema import build_schema
    from headless_bi.runtime import Runtime, Settings

    settings = Settings(models=str(DEMO), warehouse=demo_wh.path, audit=False)
    runtime = Runtime(settings, demo_wh, load_models(DEMO))
    schema = build_schema(runtime.model, settings)
    query = """{ ask(question: "number of orders by channel in 2025", today: "2026-12-04") {
        query restatement confidence data chart narrative alternatives clarification titles
        columns { key title } sql } }"""
    result = asyncio.run(schema.execute(query, context_value=make_context(runtime)))
    assert result.errors is None
    got = result.data["ask"]
    table = demo_wh.execute(
        "SELECT channel, count(*) AS n FROM orders WHERE created_at >= TIMESTAMP '2025-01-01' "
        "AND created_at < TIMESTAMP '2026-01-01' GROUP BY 1"
    ).to_pylist()
    expected = {r["channel"]: r["n"] for r in table}
    rows = {}
    for r in got["data"]:
        rows[next(v for k, v in r.items() if k.endswith("channel"))] = next(
            v for k, v in r.items() if k.endswith(".count")
        )
    assert rows == expected
    assert got["chart"] == "bar" and got["sql"] and got["columns"]
    context = make_context(runtime)
    empty = asyncio.run(schema.execute('{ ask(question: "") { query } }', context_value=context))
    assert empty.errors[0].extensions["code"] == "BAD_QUERY"


def test_cli_ask_json(demo_wh: DuckDBWarehouse) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "headless_bi.cli", "ask", "revenue by store country this year",
         "--models", str(DEMO), "--warehouse", demo_wh.path, "--today", "2026-12-04", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {"query", "restatement", "confidence", "data", "chart", "narrative", "alternatives"} <= doc.keys()
    assert doc["query"]["timeDimensions"][0]["dateRange"] == ["2026-01-01", "2026-12-31"]
    bad = subprocess.run(
        [sys.executable, "-m", "headless_bi.cli", "ask", "revenue", "--models", str(DEMO),
         "--warehouse", demo_wh.path, "--today", "yesterday"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("error: --today")


# --- a plugged-in proposer -------------------------------------------------------------------------


class FixedProposer:
    """Stands for a language model: proposes one query whatever the question."""

    name = "fixed"

    def __init__(self, query: dict[str, Any], extras: bool = False) -> None:
        self.query = query
        self.extras = extras

    def propose(self, question: str, grounding: Any) -> Any:
        from headless_bi.nlq.matcher import Interpretation

        assert {m["path"] for m in grounding.catalog()}  # it is given the caller's catalog
        got = Interpretation(question, self.query, restatement="", confidence=0.9)
        if self.extras:  # a model that knows more than the caller may see
            got.alternatives = [
                {"query": {"measures": ["sales.gross_margin"]}, "restatement": "Gross margin"},
                {"clarification": "Which?", "suggestions": ["sales.gross_margin", "sales.revenue"]},
            ]
            got.titles = {"sales.gross_margin": "Gross Margin"}
        return got


def test_plugged_in_proposer_is_used_and_checked(views_only: Any, demo_wh: DuckDBWarehouse) -> None:
    def run(q: dict[str, Any]) -> Any:
        return run_query(views_only, demo_wh, q)

    fixed = FixedProposer({"measures": ["orders_overview.count"]})
    got = ask("anything", model=views_only, execute=run, probe=run, today=TODAY, proposer=fixed)
    assert got.proposer == "fixed"
    assert got.data == [{"orders_overview.count": scalar(demo_wh, "SELECT count(*) FROM orders")}]
    # a proposal naming a member the caller may not see is never run: the matcher answers instead
    viewer = SecurityContext.create("v", ["Viewer"], {"region": "DACH"})
    governed = govern(views_only, viewer).model

    def as_viewer(q: dict[str, Any]) -> Any:
        return run_query(views_only, demo_wh, q, security=viewer)

    hidden = FixedProposer({"measures": ["sales.gross_margin"]})
    got = ask("revenue by region", model=governed, execute=as_viewer, probe=as_viewer, today=TODAY,
              context_key=viewer.policy_key, proposer=hidden)  # fmt: skip
    assert got.proposer == "matcher" and got.query["measures"] == ["sales.revenue"]
    assert "gross_margin" not in json.dumps(got.to_json_dict(include_sql=True))
    # its other readings, suggestions and titles are checked too
    leaky = FixedProposer({"measures": ["sales.revenue"]}, extras=True)
    got = ask("revenue", model=governed, execute=as_viewer, probe=as_viewer, today=TODAY,
              context_key=viewer.policy_key, proposer=leaky)  # fmt: skip
    assert got.proposer == "fixed" and "gross_margin" not in json.dumps(got.to_json_dict(include_sql=True))
    assert got.alternatives == [{"clarification": "Which?", "suggestions": ["sales.revenue"]}]


def test_proposer_setting_loads_a_factory() -> None:
    from headless_bi.errors import HeadlessBIError
    from headless_bi.nlq.proposer import MatcherProposer, load_proposer

    assert isinstance(load_proposer(""), MatcherProposer)
    assert load_proposer("headless_bi.nlq.proposer:MatcherProposer").name == "matcher"
    with pytest.raises(HeadlessBIError, match="cannot be loaded"):
        load_proposer("no_such_module:thing")
