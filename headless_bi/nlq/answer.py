"""Question → governed semantic query → result → `Answer`, the one ask path of every entry point.

The proposer sees only the caller's governed model (hidden members are not in its index, so they can
be neither matched nor suggested); its proposal is parsed against that model again, then run through
the caller's `execute`, the same compile step every other query takes (row filters, masks, audit).
No SQL is ever produced here: only Cube query JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from headless_bi.errors import HeadlessBIError, QueryError
from headless_bi.nlq.index import get_index
from headless_bi.nlq.matcher import Interpretation
from headless_bi.nlq.narrative import narrate
from headless_bi.nlq.proposer import Grounding, MatcherProposer, Proposer
from headless_bi.nlq.restate import restate
from headless_bi.semantic.compiler import MemberAnnotation
from headless_bi.semantic.model import SemanticModel
from headless_bi.semantic.query import parse_query
from headless_bi.service import QueryResult

log = logging.getLogger(__name__)

Execute = Callable[[dict[str, Any]], QueryResult]
MAX_QUESTION_CHARS = 500
# Below this an answer is shown with its alternatives first: a guess must never look like a fact.
CONFIDENT = 0.6


@dataclass
class Answer:
    question: str
    query: dict[str, Any] | None
    restatement: str
    confidence: float
    data: list[dict[str, Any]] = field(default_factory=list)
    annotations: tuple[MemberAnnotation, ...] = ()
    annotation: dict[str, Any] = field(default_factory=dict)
    chart: str = "table"
    narrative: str = ""
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    clarification: str | None = None
    titles: dict[str, str] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    sql: str | None = None
    proposer: str = "matcher"

    def to_json_dict(self, *, include_sql: bool = False) -> dict[str, Any]:
        out = {
            "question": self.question, "query": self.query, "restatement": self.restatement,
            "confidence": self.confidence, "data": self.data, "chart": self.chart,
            "narrative": self.narrative, "alternatives": self.alternatives,
            "clarification": self.clarification, "titles": self.titles, "comparison": self.comparison,
            "annotation": self.annotation,
        }  # fmt: skip
        if include_sql:
            out["sql"] = self.sql
        return out


def ask(
    question: str,
    *,
    model: SemanticModel,
    execute: Execute,
    probe: Execute | None = None,
    today: date,
    context_key: Hashable = None,
    proposer: Proposer | None = None,
) -> Answer:
    """Answer `question` for one caller.

    `model` is the caller's governed model (what they may see); `execute` runs a query as the caller
    (audited); `probe` reads distinct values for the index as the caller (row filters apply, not
    audited; None: no value matching); `context_key` keeps one caller's index (its values) from
    another's.
    """
    question = (question or "").strip()
    if not question:
        raise QueryError("the question is empty", member="question")
    if len(question) > MAX_QUESTION_CHARS:
        raise QueryError(f"the question is longer than {MAX_QUESTION_CHARS} characters", member="question")
    proposer = proposer or MatcherProposer()
    grounding = Grounding(model, get_index(model, probe, context_key), today)
    proposal = proposer.propose(question, grounding)
    if proposal.query is not None and not _valid(model, proposal.query):
        if isinstance(proposer, MatcherProposer):
            proposal = _clarify(proposal, "the question's members cannot be combined in one query")
        else:  # a plugged-in model proposed something the caller's model refuses: use the matcher
            log.info("proposer %s gave an invalid query; using the built-in matcher", proposer.name)
            proposal = MatcherProposer().propose(question, grounding)
            proposer = MatcherProposer()
    _keep_visible(proposal, grounding)
    if proposal.query is None:
        clarification = next(
            (a["clarification"] for a in proposal.alternatives if "clarification" in a), None
        )
        return Answer(
            question, None, "", proposal.confidence, alternatives=proposal.alternatives,
            clarification=clarification or "Which measure do you mean?", proposer=proposer.name,
        )  # fmt: skip
    result = execute(proposal.query)
    comparison = None
    if proposal.compare_query is not None:
        before = execute(proposal.compare_query)
        comparison = {"label": proposal.compare_label, "query": proposal.compare_query, "data": before.data}
    titles = {a.key: a.title for a in result.compiled.annotations}
    titles.update({a.key.rsplit(".", 1)[0]: a.title for a in result.compiled.annotations if a.granularity})
    titles.update(proposal.titles)
    return Answer(
        question=question,
        query=proposal.query,
        restatement=proposal.restatement or restate(proposal.query, titles, share=proposal.share),
        confidence=proposal.confidence,
        data=result.data,
        annotations=result.compiled.annotations,
        annotation=result.annotation,
        chart=proposal.chart,
        narrative=narrate(
            result.data,
            result.compiled.annotations,
            share=proposal.share,
            limited=bool(proposal.query.get("limit")) and len(result.data) >= proposal.query["limit"],
            additive=_additive(grounding),
            comparison=comparison["data"] if comparison else None,
            comparison_label=proposal.compare_label,
        ),
        alternatives=proposal.alternatives,
        titles=titles,
        comparison=comparison,
        sql=result.sql,
        proposer=proposer.name,
    )


def _keep_visible(proposal: Interpretation, grounding: Grounding) -> None:
    """Whatever a proposer returns besides its query (other readings, suggestions, titles) names only
    members the caller may see: a plugged-in model's extras are checked like its query."""
    visible = {e.path for e in grounding.index.entries}
    kept = []
    for alt in proposal.alternatives:
        if "query" in alt and not _valid(grounding.model, alt["query"]):
            continue
        if "suggestions" in alt:
            alt = {**alt, "suggestions": [p for p in alt["suggestions"] if p in visible]}
        kept.append(alt)
    proposal.alternatives = kept
    proposal.titles = {k: v for k, v in proposal.titles.items() if k in visible}


def _additive(grounding: Grounding) -> frozenset[str]:
    """Measures whose rows add up to a total: sums and counts (an average or a ratio does not)."""
    kinds = ("sum", "count")  # a distinct count over groups double counts what two groups share
    return frozenset(e.path for e in grounding.index.entries if e.kind == "measure" and e.type in kinds)


def _valid(model: SemanticModel, query: dict[str, Any]) -> bool:
    try:
        parse_query(model, query)
    except HeadlessBIError:
        return False
    return True


def _clarify(proposal: Interpretation, reason: str) -> Interpretation:
    proposal.query = None
    proposal.alternatives = [{"clarification": f"{reason}. Could you rephrase?", "suggestions": []}]
    return proposal
