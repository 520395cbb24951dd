"""Each measure's aggregate expression, built once at load time.

Base measures become `SUM(x)`, `COUNT(DISTINCT x)`, ... with measure `filters` folded in as
`CASE WHEN`. A `number` measure made only of other measures stays a tree of `MeasureRef` leaves over
*base* measures, evaluated after the per-cube aggregates are combined (so ratios across cubes are
right); a `number` measure with its own column references is an aggregate over its cube's rows.
"""

from __future__ import annotations

from sqlglot import exp

from headless_bi.semantic.model import Cube, Measure
from headless_bi.semantic.references import MeasureRef, parenthesize, replace_measure_refs


def prepare(measure: Measure, cubes: dict[str, Cube], _visiting: tuple[str, ...] = ()) -> str | None:
    """Set `measure.aggregate` (and `depends_on`); return a problem message instead of raising."""
    if measure.aggregate is not None:
        return None
    if measure.path in _visiting:
        return f"circular reference between measures: {' → '.join([*_visiting, measure.path])}"
    if measure.type != "number":
        if measure.expression is None and measure.type != "count":
            return None if measure.sql_text else f"a '{measure.type}' measure needs 'sql'"
        measure.aggregate = _base_aggregate(measure)
        return None
    if measure.expression is None:
        return None if measure.sql_text else "a 'number' measure needs 'sql'"
    tree = measure.expression.copy()
    own_columns = any(True for _ in tree.find_all(exp.Column))
    visiting = (*_visiting, measure.path)
    base: list[str] = []
    values: dict[str, exp.Expression] = {}
    for ref in tree.find_all(MeasureRef):
        target = _measure(cubes, ref.path)
        problem = prepare(target, cubes, visiting)
        if problem:
            return problem
        if target.aggregate is None:
            return None  # the target's own problem is reported on it
        if own_columns and target.cube != measure.cube:
            return (
                f"'{measure.path}' mixes its own columns with measure '{target.path}' of another cube; "
                "build it from measures only"
            )
        if target.is_derived and not own_columns:
            values[ref.path] = parenthesize(target.aggregate.copy())
            base.extend(target.depends_on)
        elif own_columns:
            values[ref.path] = parenthesize(_inline_refs(target.aggregate.copy(), cubes))
        else:
            base.append(target.path)
    measure.aggregate = replace_measure_refs(
        tree, lambda path: values[path].copy() if path in values else MeasureRef(this=path)
    )
    measure.depends_on = tuple(dict.fromkeys(base))
    return None


def row_value(measure: Measure, cubes: dict[str, Cube]) -> exp.Expression:
    """The measure for one row, unaggregated (Cube's `ungrouped` queries): `sum(x)` → x, `count` → 1."""
    if measure.is_derived:
        assert measure.aggregate is not None
        return replace_measure_refs(
            measure.aggregate.copy(), lambda path: parenthesize(row_value(_measure(cubes, path), cubes))
        )
    if measure.type == "number":
        raise ValueError(f"'{measure.path}' is an aggregate expression and has no value per row")
    value = measure.expression.copy() if measure.expression is not None else exp.Literal.number(1)
    condition = _conjunction(measure.filters)
    if condition is None:
        return value
    fallback = exp.Literal.number(0) if measure.type == "count" and measure.expression is None else exp.Null()
    return exp.Case(ifs=[exp.If(this=condition, true=value)], default=fallback)


def _inline_refs(tree: exp.Expression, cubes: dict[str, Cube]) -> exp.Expression:
    def value_of(path: str) -> exp.Expression:
        target = _measure(cubes, path)
        assert target.aggregate is not None
        return parenthesize(_inline_refs(target.aggregate.copy(), cubes))

    return replace_measure_refs(tree, value_of)


def _measure(cubes: dict[str, Cube], path: str) -> Measure:
    cube, _, name = path.partition(".")
    return cubes[cube].measures[name]


def _base_aggregate(measure: Measure) -> exp.Expression:
    value = measure.expression.copy() if measure.expression is not None else None
    condition = _conjunction(measure.filters)
    if condition is not None:
        value = exp.Case(
            ifs=[exp.If(this=condition, true=value if value is not None else exp.Literal.number(1))]
        )
    kind = measure.type
    if kind == "count":
        return exp.Count(this=value if value is not None else exp.Star())
    assert value is not None
    if kind == "count_distinct":
        return exp.Count(this=exp.Distinct(expressions=[value]))
    if kind == "count_distinct_approx":
        return exp.ApproxDistinct(this=value)
    if kind == "sum":
        return exp.Sum(this=value)
    if kind == "avg":
        return exp.Avg(this=value)
    if kind == "min":
        return exp.Min(this=value)
    if kind == "max":
        return exp.Max(this=value)
    raise AssertionError(f"unhandled measure type {kind}")


def _conjunction(conditions: tuple[exp.Expression, ...]) -> exp.Expression | None:
    if not conditions:
        return None
    return exp.and_(*(parenthesize(c.copy()) for c in conditions))
