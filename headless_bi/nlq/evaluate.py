"""Score `ask` on a question set: exact-match and execution accuracy, and how misses were answered.

A question set is YAML (see tests/nlq_questions/README.md): `models`, `today` and `questions`, each with
the `question` and the `expected` Cube query (or `clarify`). Model authors run it on their own models
to see which wording their titles and synonyms miss. Execution accuracy compares result rows, so a
view and the cubes behind it that give the same numbers both count as right.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from headless_bi.nlq.answer import CONFIDENT, Answer

ExecuteRows = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass
class Outcome:
    id: str
    question: str
    expected: dict[str, Any] | None  # None: a clarification is expected
    got: dict[str, Any] | None
    confidence: float
    exact: bool
    executed: bool  # same rows (or, for `clarify`, no confident answer)
    hedged: bool  # a miss answered by alternatives, a question back or low confidence
    tags: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class QuestionSet:
    path: Path
    models: Path
    today: date
    questions: list[dict[str, Any]]


def load_question_set(path: Path, root: Path) -> QuestionSet:
    data = _dates_as_text(yaml.safe_load(path.read_text(encoding="utf-8")))
    today = date.fromisoformat(data["today"])
    return QuestionSet(path, root / data["models"], today, list(data["questions"]))


def _dates_as_text(value: Any) -> Any:
    """YAML reads unquoted 2024-01-31 as a date; queries carry dates as text."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _dates_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(v) for v in value]
    return value


def canonical(query: dict[str, Any] | None) -> Any:
    """Order-insensitive form of a query for exact matching (order and limit do count)."""
    if query is None:
        return None

    def filt(f: dict[str, Any]) -> Any:
        if "and" in f or "or" in f:
            key = "and" if "and" in f else "or"
            return (key, frozenset(filt(x) for x in f[key]))
        return (f["member"], f["operator"], frozenset(str(v) for v in f.get("values") or []))

    order = query.get("order") or {}
    if isinstance(order, list):
        order = dict(order)
    return (
        frozenset(query.get("measures") or []),
        frozenset(query.get("dimensions") or []),
        frozenset(
            (td["dimension"], td.get("granularity"), tuple(td["dateRange"]) if td.get("dateRange") else None)
            for td in query.get("timeDimensions") or []
        ),
        frozenset(filt(f) for f in query.get("filters") or []),
        frozenset(query.get("segments") or []),
        tuple(order.items()),
        query.get("limit"),
    )


def _value(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.6g}") if math.isfinite(v) else str(v)
    return v


def same_rows(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Same rows whatever the column names (a view's and a cube's member names differ)."""

    def shape(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
        return sorted(tuple(sorted(repr(_value(v)) for v in row.values())) for row in rows)

    return shape(a) == shape(b)


def score(
    item: dict[str, Any], answer: Answer | None, rows: ExecuteRows, error: str | None = None
) -> Outcome:
    expected = item["expected"] if isinstance(item["expected"], dict) else None
    got = answer.query if answer is not None else None
    confidence = answer.confidence if answer is not None else 0.0
    hedged = answer is None or got is None or confidence < CONFIDENT or bool(answer.alternatives)
    if expected is None:
        executed = got is None or confidence < CONFIDENT
        exact = got is None
    else:
        exact = canonical(got) == canonical(expected)
        executed = exact or (got is not None and _rows_equal(rows, expected, got))
        if executed and "compare" in item:
            wanted = item["compare"].get("dateRange")
            comparison = answer.comparison if answer is not None else None
            tds = (comparison or {}).get("query", {}).get("timeDimensions", [])
            seen = [td.get("dateRange") for td in tds]
            executed = comparison is not None and (wanted is None or list(wanted) in seen)
    return Outcome(
        str(item.get("id")), item["question"], expected, got, confidence, exact, executed,
        hedged, list(item.get("tags") or []), error,
    )  # fmt: skip


def _rows_equal(rows: ExecuteRows, expected: dict[str, Any], got: dict[str, Any]) -> bool:
    try:
        return same_rows(rows(expected), rows(got))
    except Exception:
        return False


@dataclass
class Report:
    outcomes: list[Outcome]

    @property
    def answerable(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.expected is not None]

    def rate(self, attr: str, outcomes: list[Outcome] | None = None) -> float:
        items = self.outcomes if outcomes is None else outcomes
        return sum(getattr(o, attr) for o in items) / max(1, len(items))

    @property
    def confident_misses(self) -> list[Outcome]:
        """Wrong answers given as if they were right: what must never happen."""
        return [o for o in self.outcomes if not o.executed and not o.hedged]

    def summary(self) -> str:
        lines = [
            f"questions: {len(self.outcomes)} ({len(self.answerable)} with a query)",
            f"exact match: {self.rate('exact'):.1%}   execution accuracy: {self.rate('executed'):.1%}",
            f"misses: {sum(not o.executed for o in self.outcomes)}, "
            f"of which answered with confidence and no alternative: {len(self.confident_misses)}",
        ]
        tags = sorted({t for o in self.outcomes for t in o.tags})
        for tag in tags:
            items = [o for o in self.outcomes if tag in o.tags]
            lines.append(f"  {tag:<18} {len(items):>4}  execution {self.rate('executed', items):.0%}")
        for o in self.outcomes:
            if not o.executed:
                mark = "CONFIDENT MISS" if not o.hedged else "hedged miss"
                lines.append(f"- {mark} {o.id} ({o.confidence:.2f}): {o.question}")
                lines.append(f"    expected {o.expected}")
                lines.append(f"    got      {o.got}" + (f"  [{o.error}]" if o.error else ""))
        return "\n".join(lines)


def evaluate(questions: QuestionSet, warehouse: Any, model: Any = None) -> Report:
    """Ask every question as the operator on `warehouse` and score the answers."""
    from headless_bi.errors import HeadlessBIError
    from headless_bi.nlq.answer import ask
    from headless_bi.semantic.loader import load_models
    from headless_bi.service import run_query

    model = model or load_models(questions.models)

    def execute(query: dict[str, Any]) -> Any:
        return run_query(model, warehouse, query)

    outcomes = []
    for item in questions.questions:
        answer, error = None, None
        try:
            answer = ask(item["question"], model=model, execute=execute, probe=execute, today=questions.today)
        except HeadlessBIError as exc:
            error = exc.message
        outcomes.append(score(item, answer, lambda q: execute(q).data, error))
    return Report(outcomes)
