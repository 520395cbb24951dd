"""A filtered count or a segment read as the condition it stands for.

"Revenue excluding returns": the model's `returned_count` counts orders whose status is 'returned',
so the words name a condition on status, not a second measure. Only simple conditions are read
(`dimension = 'value'`, `dimension IN (...)` on a column some visible dimension of the same owner
exposes); anything else is left as it was and hedged by the matcher.
"""

from __future__ import annotations

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
