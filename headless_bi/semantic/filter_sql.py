"""Filter trees (`Condition` / `Group`) → sqlglot predicates, with Cube's NULL, LIKE and date-range rules.

Used by the query builder for WHERE and HAVING, and by the security layer for row-level filters, so a
policy filter means exactly what the same filter means in a query.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlglot import exp

from headless_bi.semantic.model import Dimension, ResolvedMember
from headless_bi.semantic.query import Condition, FilterNode, Group
from headless_bi.semantic.time import DateRange

LIKE_ESCAPE = "!"


def _and(parts: list[exp.Expression]) -> exp.Expression:
    return exp.and_(*parts, copy=False) if len(parts) > 1 else parts[0]


def _or(parts: list[exp.Expression]) -> exp.Expression:
    return exp.or_(*parts, copy=False) if len(parts) > 1 else parts[0]


class FilterSql:
    """Renders filters for one query: time literals depend on its zone and on which time dimensions
    hold calendar dates."""

    def __init__(self, calendar_dates: frozenset[str], timezone: str):
        self.calendar_dates = calendar_dates
        self.timezone = timezone

    def render(
        self, node: FilterNode, value_of: Callable[[ResolvedMember], exp.Expression]
    ) -> exp.Expression:
        if isinstance(node, Group):
            parts = [self.render(child, value_of) for child in node.children]
            joined = _and(parts) if node.kind == "and" else _or(parts)
            return exp.Paren(this=joined)
        return exp.Paren(this=self.condition(node, value_of(node.ref)))

    def condition(self, cond: Condition, value: exp.Expression) -> exp.Expression:
        op = cond.operator
        is_time = isinstance(cond.ref.member, Dimension) and cond.ref.member.type == "time"
        zoned = is_time and cond.ref.member.path not in self.calendar_dates
        literal = (lambda v: self._time_literal(v, zoned)) if is_time else _literal
        if op == "set":
            return exp.Not(this=exp.Is(this=value, expression=exp.Null()))
        if op == "notSet":
            return exp.Is(this=value, expression=exp.Null())
        if op in ("equals", "notEquals"):
            return _equality(
                value, [literal(v) if v is not None else None for v in cond.values], op == "equals"
            )
        if op in ("gt", "gte", "lt", "lte"):
            cls = {"gt": exp.GT, "gte": exp.GTE, "lt": exp.LT, "lte": exp.LTE}[op]
            return cls(this=value, expression=literal(cond.values[0]))
        if op in ("inDateRange", "notInDateRange"):
            start, end = self._bounds(cond.values[0], zoned)
            inside = _and([exp.GTE(this=value, expression=start), exp.LT(this=value.copy(), expression=end)])
            if op == "inDateRange":
                return inside
            return _or(
                [
                    exp.LT(this=value.copy(), expression=start.copy()),
                    exp.GTE(this=value.copy(), expression=end.copy()),
                ]
            )
        if op in ("beforeDate", "beforeOrOnDate", "afterDate", "afterOrOnDate"):
            # The value is a range: its start for beforeDate/afterOrOnDate, past its end for the others.
            start, end = self._bounds(cond.values[0], zoned)
            if op in ("beforeDate", "beforeOrOnDate"):
                return exp.LT(this=value, expression=start if op == "beforeDate" else end)
            return exp.GTE(this=value, expression=end if op == "afterDate" else start)
        return _like(value, op, cond.values)

    def _bounds(self, date_range: DateRange, zoned: bool) -> tuple[exp.Expression, exp.Expression]:
        """Range bounds as stored: UTC for instants, the local wall clock for calendar dates."""
        start, end = date_range.to_utc(self.timezone) if zoned else (date_range.start, date_range.end)
        return timestamp_literal(start), timestamp_literal(end)

    def _time_literal(self, local: datetime, zoned: bool) -> exp.Expression:
        if zoned and self.timezone != "UTC":
            local = DateRange(local, local).to_utc(self.timezone)[0]
        return timestamp_literal(local)


def timestamp_literal(value: datetime) -> exp.Expression:
    """A bound at midnight is written as a DATE: equal for timestamp columns, and a DATE column is
    then compared without a per-row cast (so DuckDB can skip row groups by their min/max)."""
    if value.time() == datetime.min.time():
        return exp.cast(exp.Literal.string(value.date().isoformat()), exp.DataType.Type.DATE, copy=False)
    return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP, copy=False)


def _literal(value: object) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _equality(value: exp.Expression, literals: list[exp.Expression | None], positive: bool) -> exp.Expression:
    """equals / notEquals with Cube's NULL rules: a null value matches NULL; notEquals keeps NULL rows."""
    present = [v for v in literals if v is not None]
    wants_null = len(present) != len(literals)
    parts: list[exp.Expression] = []
    if present:
        match = (
            exp.EQ(this=value, expression=present[0])
            if len(present) == 1
            else exp.In(this=value, expressions=present)
        )
        parts.append(match if positive else exp.Not(this=match))
    if positive:
        if wants_null:
            parts.append(exp.Is(this=value.copy(), expression=exp.Null()))
        return _or(parts)
    null_check = exp.Is(this=value.copy(), expression=exp.Null())
    if wants_null:
        return _and([*parts, exp.Not(this=null_check)])
    return _or([*parts, null_check])


def _like(value: exp.Expression, op: str, values: tuple[object, ...]) -> exp.Expression:
    """contains / startsWith / endsWith (and negations): case-insensitive, wildcards in values escaped."""
    positive = not op.startswith("not")
    kind = op[3:].lower() if not positive else op.lower()
    patterns = []
    for raw in values:
        text = str(raw).replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "!%").replace("_", "!_")
        pattern = {"contains": f"%{text}%", "startswith": f"{text}%", "endswith": f"%{text}"}[kind]
        patterns.append(
            exp.Escape(
                this=exp.ILike(this=value.copy(), expression=exp.Literal.string(pattern)),
                expression=exp.Literal.string(LIKE_ESCAPE),
            )
        )
    match = _or(patterns)
    if positive:
        return match
    return _or([exp.Not(this=exp.Paren(this=match)), exp.Is(this=value.copy(), expression=exp.Null())])
