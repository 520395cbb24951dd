"""A filtered count or a segment read as the condition it stands for.

"Revenue excluding returns": the model's `returned_count` counts orders whose status is 'returned',
so the words name a condition on status, not a second measure. Only simple conditions are read
(`dimension = 'value'`, `dimension IN (...)` on a column some visible dimension of the same owner
exposes); anything else is left as it was and hedged by the matcher.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from headless_bi.nlq.index import Entry, Index
from headless_bi.semantic.model import Measure, Segment


def as_condition(index: Index, entry: Entry) -> tuple[Entry, list[str]] | None:
    """(the dimension, its values) that `entry` — a count with one filter, or a segment — selects."""
    target = entry.target
    if isinstance(target, Measure) and target.type == "count":
        conditions = target.filters
    elif isinstance(target, Segment):
        conditions = (target.expression,)
    else:
        return None
    if len(conditions) != 1:
        return None
    condition = conditions[0].unnest()
    if isinstance(condition, exp.EQ) and isinstance(condition.expression, exp.Literal):
        column, values = condition.this, [condition.expression.this]
    elif isinstance(condition, exp.In) and condition.expressions and all(
        isinstance(v, exp.Literal) for v in condition.expressions
    ):
        column, values = condition.this, [v.this for v in condition.expressions]
    else:
        return None
    dimension = next(
        (
            e for e in index.by_owner.get(entry.owner, [])
            if e.kind == "dimension" and getattr(e.target, "expression", None) == column
        ),
        None,
    )  # fmt: skip
    return (dimension, values) if dimension is not None else None


def negates(entry: Entry) -> bool:
    """Is this a segment of the 'not_cancelled' / 'non_food' kind (a negation already)?"""
    return entry.kind == "segment" and bool({"not", "non"} & set(entry.path.split(".")[-1].split("_")))


def rate_for(index: Index, query: dict[str, Any]) -> tuple[dict[str, Any], Entry] | None:
    """'what percent of orders were returned': a query that counts rows under a condition, rewritten
    to the model's own rate of that condition (`return_rate` = returned_count / count), if it has one.

    Returns (the new query, the rate's entry), or None when no filter or segment of the query is the
    condition of a count some percent measure of the same owner divides by.
    """
    measures = query.get("measures", [])
    owners = {m.split(".", 1)[0] for m in measures}
    if len(owners) != 1:
        return None
    owner = owners.pop()
    entries = index.by_owner.get(owner, [])
    for rate in entries:
        target = rate.target
        if rate.kind != "measure" or getattr(target, "format", None) != "percent":
            continue
        for dep in getattr(target, "depends_on", ()):
            count = next((e for e in entries if getattr(e.target, "path", None) == dep), None)
            if count is None:
                continue
            rewritten = _without_condition(index, query, count)
            if rewritten is not None:
                rewritten["measures"] = [rate.path]
                rewritten.pop("order", None)
                return rewritten, rate
    return None


def _without_condition(index: Index, query: dict[str, Any], count: Entry) -> dict[str, Any] | None:
    """`query` less the one filter or segment that is `count`'s condition, or None if it has none."""
    target = count.target
    if not isinstance(target, Measure) or len(target.filters) != 1:
        return None
    condition = as_condition(index, count)
    for i, f in enumerate(query.get("filters", [])):
        if (
            condition is not None and f.get("member") == condition[0].path and f.get("operator") == "equals"
            and sorted(map(str, f.get("values", []))) == sorted(condition[1])
        ):  # fmt: skip
            return {**query, "filters": [x for j, x in enumerate(query["filters"]) if j != i]}
    by_path = {e.path: e for e in index.by_owner.get(count.owner, [])}
    for segment in query.get("segments", []):
        entry = by_path.get(segment)
        segment_target = getattr(entry, "target", None)
        if isinstance(segment_target, Segment) and segment_target.expression == target.filters[0]:
            return {**query, "segments": [s for s in query["segments"] if s != segment]}
    return None
