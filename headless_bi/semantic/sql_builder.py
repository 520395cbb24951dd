"""Logical plan → sqlglot tree. No SQL text is parsed here: member trees are copied, values become
literals, identifiers come only from the model.

Shape of the result:

    WITH "__g0" AS (<cube A's measures at the query's grain>),
         "__g1" AS (<cube B's measures ...>)
    SELECT <dimension keys, coalesced>, <measures, derived ones computed here>
    FROM "__g0" FULL JOIN "__g1" ON <keys IS NOT DISTINCT FROM ...>
    WHERE <measure filters> ORDER BY ... LIMIT ... OFFSET ...
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from headless_bi.errors import QueryError
from headless_bi.semantic import aggregates
from headless_bi.semantic.filter_sql import FilterSql, timestamp_literal
from headless_bi.semantic.model import Cube, Dimension, Measure, RollingWindow, SemanticModel
from headless_bi.semantic.planner import JoinTree, MeasureGroup, Plan
from headless_bi.semantic.query import Condition, FilterNode, OutputDimension, Query
from headless_bi.semantic.references import parenthesize, replace_measure_refs
from headless_bi.semantic.time import DateRange, buckets

MAX_BUCKETS = 10_000  # a rolling window's series is written out up to this many buckets
# Rewrites a cube's FROM source (the security layer adds row filters here); identity by default.
SourceHook = Callable[[Cube, exp.Expression], exp.Expression]


def _ident(name: str) -> exp.Identifier:
    return exp.Identifier(this=name, quoted=True)


# Nodes are built directly: sqlglot's fluent builders parse strings and copy trees, which is most of
# the compile time otherwise.
def _select(*outputs: exp.Expression) -> exp.Select:
    return exp.Select(expressions=list(outputs))


def _alias(value: exp.Expression, name: str, quoted: bool = False) -> exp.Alias:
    return exp.Alias(this=value, alias=exp.Identifier(this=name, quoted=quoted))


def _from(select: exp.Select, source: exp.Expression) -> exp.Select:
    select.set("from_", exp.From(this=source))
    return select


def _join(select: exp.Select, source: exp.Expression, on: exp.Expression | None, side: str) -> exp.Select:
    join = (
        exp.Join(this=source, kind="CROSS") if on is None else exp.Join(this=source, on=on, side=side or None)
    )
    select.append("joins", join)
    return select


def _and(parts: list[exp.Expression]) -> exp.Expression:
    return exp.and_(*parts, copy=False) if len(parts) > 1 else parts[0]


def _or(parts: list[exp.Expression]) -> exp.Expression:
    return exp.or_(*parts, copy=False) if len(parts) > 1 else parts[0]


def _measure_refs(nodes: tuple[FilterNode, ...]) -> list:
    found = []
    for node in nodes:
        if isinstance(node, Condition):
            found.append(node.ref)
        else:
            found.extend(_measure_refs(node.children))
    return found


def _typed_null(group: int, measure: int) -> exp.Expression:
    """NULL with the type of group's measure column: a scalar subquery that returns no row."""
    empty = _from(_select(_col(f"m{measure}")), exp.Table(this=_ident(f"__g{group}")))
    empty.set("where", exp.Where(this=exp.false()))
    return exp.Subquery(this=empty)


def _group_by_position(select: exp.Select, count: int) -> exp.Select:
    """GROUP BY 1, 2, ...: every target dialect accepts ordinals, and the keys are not copied again."""
    if count:
        select.set("group", exp.Group(expressions=[exp.Literal.number(i + 1) for i in range(count)]))
    return select


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(this=_ident(name), table=_ident(table) if table else None)


class SqlBuilder:
    def __init__(self, model: SemanticModel, plan: Plan, *, source_hook: SourceHook | None = None):
        self.model = model
        self.plan = plan
        self.query: Query = plan.query
        self.source_hook = source_hook
        self.dim_alias = {d.key: f"d{i}" for i, d in enumerate(self.query.dimensions)}
        self.filters = FilterSql(model.calendar_dates, self.query.timezone)

    # -- entry points -------------------------------------------------------------------------

    def build(self) -> exp.Select:
        select = self.build_unpaged()
        # Dimension keys break ties, so pages fetched with offset never overlap or skip rows.
        ordered = {key for key, _ in self.query.order}
        ties = (
            [(d.key, False) for d in self.query.dimensions if d.key not in ordered]
            if self.query.order
            else []
        )
        keys = [*self.query.order, *ties]
        if keys:
            select.set(
                "order",
                exp.Order(
                    expressions=[
                        exp.Ordered(this=_col(key), desc=desc, nulls_first=False) for key, desc in keys
                    ]
                ),
            )
        if self.query.limit is not None:
            select.set("limit", exp.Limit(expression=exp.Literal.number(self.query.limit)))
        if self.query.offset:
            select.set("offset", exp.Offset(expression=exp.Literal.number(self.query.offset)))
        return select

    def build_unpaged(self) -> exp.Select:
        if self.query.ungrouped:
            return self._ungrouped()
        if not self.plan.groups:
            return self._dimension_only()
        ctes = [(f"__g{i}", self._group(group)) for i, group in enumerate(self.plan.groups)]
        if len(ctes) == 1:
            select, measure_col = self._single_group()
        else:
            select, measure_col = self._combined_groups()
        for ref in self.query.measures:
            value = self._measure_value(ref.member, measure_col)
            select.append("expressions", _alias(value, ref.name, quoted=True))
        having = [
            self._filter(node, lambda ref: self._measure_value(ref.member, measure_col))
            for node in self.query.having
        ]
        if having and len(ctes) == 1:
            select.set("where", exp.Where(this=_and(having)))
        elif having:
            select.set("having", exp.Having(this=_and(having)))
        ctes_node = [exp.CTE(this=body, alias=exp.TableAlias(this=_ident(name))) for name, body in ctes]
        select.set("with_", exp.With(expressions=ctes_node))
        return select

    def _single_group(self) -> tuple[exp.Select, dict[str, exp.Expression]]:
        measure_col = {m.path: _col(f"m{j}", "__g0") for j, m in enumerate(self.plan.groups[0].measures)}
        outputs = [
            _alias(_col(self.dim_alias[d.key], "__g0"), d.key, quoted=True) for d in self.query.dimensions
        ]
        return _from(_select(*outputs), exp.Table(this=_ident("__g0"))), measure_col

    def _combined_groups(self) -> tuple[exp.Select, dict[str, exp.Expression]]:
        """Stack the groups (UNION ALL) and group by the dimension values.

        Each group has at most one row per dimension tuple, so MAX picks its value; GROUP BY matches
        NULL keys, and a tuple that one fact lacks survives. (A FULL JOIN on IS NOT DISTINCT FROM does
        the same, but PostgreSQL cannot execute it.) The other groups' columns are typed NULLs, since
        PostgreSQL types a column that is NULL in the first two branches as text.
        """
        columns = [(i, j) for i, group in enumerate(self.plan.groups) for j in range(len(group.measures))]
        branches = []
        for i in range(len(self.plan.groups)):
            outputs: list[exp.Expression] = [_col(alias) for alias in self.dim_alias.values()]
            outputs += [
                _alias(_col(f"m{j}") if gi == i else _typed_null(gi, j), f"g{gi}_m{j}") for gi, j in columns
            ]
            branches.append(_from(_select(*outputs), exp.Table(this=_ident(f"__g{i}"))))
        stacked: exp.Query = branches[0]
        for branch in branches[1:]:
            stacked = exp.Union(this=stacked, expression=branch, distinct=False)
        measure_col: dict[str, exp.Expression] = {
            self.plan.groups[i].measures[j].path: exp.Max(this=_col(f"g{i}_m{j}")) for i, j in columns
        }
        outputs = [_alias(_col(self.dim_alias[d.key]), d.key, quoted=True) for d in self.query.dimensions]
        source = exp.Subquery(this=stacked, alias=exp.TableAlias(this=_ident("__all")))
        return _group_by_position(_from(_select(*outputs), source), len(outputs)), measure_col

    # -- measure groups ---------------------------------------------------------------------------

    def _group(self, group: MeasureGroup) -> exp.Select:
        window = next((m.rolling_window for m in group.measures if m.rolling_window), None)
        bucketed_dims = [d for d in self.query.dimensions if d.granularity]
        bucketed = bucketed_dims[0] if bucketed_dims else None
        if window is not None and len(bucketed_dims) > 1:
            raise QueryError(
                f"rolling window measure {group.measures[0].path} needs exactly one time dimension "
                f"with a granularity; the query has {', '.join(d.key for d in bucketed_dims)}"
            )
        if window is not None and (bucketed is not None or self._date_range_of(None) is not None):
            if group.multiplied:
                raise QueryError(
                    f"rolling window measure {group.measures[0].path} cannot be combined with "
                    "dimensions reached through a one_to_many join"
                )
            return self._rolling_group(group, window, bucketed)
        if group.multiplied:
            return self._deduplicated_group(group)
        outputs = self._dimension_outputs()
        outputs += [_alias(self._aggregate(m), f"m{j}") for j, m in enumerate(group.measures)]
        select = self._tree_select(group.tree, outputs)
        self._where(select)
        return _group_by_position(select, len(self.query.dimensions))

    def _deduplicated_group(self, group: MeasureGroup) -> exp.Select:
        """Aggregate over distinct (primary key, dimensions) so a one_to_many join cannot repeat a row."""
        cube = self.model.cubes[group.cube]
        keys = cube.primary_key
        if not keys:
            raise AssertionError(f"cube {cube.name} has no primary key")  # loader guarantees one
        key_outputs = [_alias(self._copy(k.expression), f"k{i}") for i, k in enumerate(keys)]
        inner = self._tree_select(group.tree, [*key_outputs, *self._dimension_outputs()])
        inner.set("distinct", exp.Distinct())
        self._where(inner)
        on = _and(
            [
                exp.EQ(this=_col(f"k{i}", "__keys"), expression=self._copy(k.expression))
                for i, k in enumerate(keys)
            ]
        )
        dims = [_alias(_col(alias, "__keys"), alias) for alias in self.dim_alias.values()]
        measures = [_alias(self._aggregate(m), f"m{j}") for j, m in enumerate(group.measures)]
        outer = _from(
            _select(*dims, *measures), exp.Subquery(this=inner, alias=exp.TableAlias(this=_ident("__keys")))
        )
        _join(outer, self._source(cube), on, "")
        if group.measure_tree is not None:
            for step in group.measure_tree.steps:
                _join(
                    outer, self._source(self.model.cubes[step.child]), self._copy(step.join.condition), "LEFT"
                )
        return _group_by_position(outer, len(dims))

    def _rolling_group(
        self, group: MeasureGroup, window: RollingWindow, bucketed: OutputDimension | None
    ) -> exp.Select:
        """Cube's rolling window: each bucket [b, e) aggregates the rows inside its window.

        Buckets come from the time dimension's dateRange when it has one (so empty buckets are kept),
        else from the data; without a granularity the whole dateRange is one bucket. The rows are
        filtered by everything except that date range, so a running total includes earlier history.
        Bounds follow Cube's rollingWindowDateJoinCondition: with offset end the window is
        [e - trailing, e + leading), with offset start [b - trailing, b + leading); an unset side
        stops at that anchor, 'unbounded' removes it.
        """
        ranged = self._date_range_of(bucketed.ref.member if bucketed else None)
        timed = bucketed or (OutputDimension(ranged.ref.name, ranged.ref, None) if ranged else None)
        assert timed is not None
        series = self._series(group, bucketed, ranged)
        start, end = _col("b", "__series"), _col("e", "__series")
        local_time = self._local_time(timed)
        lower_anchor = start if window.offset == "start" else end
        upper_anchor = end if window.offset == "end" else start
        conditions: list[exp.Expression] = []
        if window.trailing != "unbounded":
            lower = _shift(lower_anchor, window.trailing, -1) if window.trailing else lower_anchor.copy()
            conditions.append(exp.GTE(this=local_time.copy(), expression=lower))
        if window.leading != "unbounded":
            upper = _shift(upper_anchor, window.leading, 1) if window.leading else upper_anchor.copy()
            conditions.append(exp.LT(this=local_time.copy(), expression=upper))
        outputs = []
        for dim in self.query.dimensions:
            value = start.copy() if dim is bucketed else self._dimension_value(dim)
            outputs.append(_alias(value, self.dim_alias[dim.key]))
        outputs += [_alias(self._aggregate(m), f"m{j}") for j, m in enumerate(group.measures)]
        select = self._tree_select(group.tree, outputs)
        _join(select, series.copy(), _and(conditions) if conditions else exp.true(), "")
        kept = [node for node in self.query.where if ranged is None or node is not ranged]
        filters = [self._filter(node, self._member_value) for node in kept]
        filters += [parenthesize(self._copy(s.member.expression)) for s in self.query.segments]
        if filters:
            select.set("where", exp.Where(this=_and(filters)))
        select = _group_by_position(select, len(self.query.dimensions))
        if bucketed is None or len(self.query.dimensions) != 1:
            return select
        # Buckets whose window holds no row still get a row (NULL), as Cube's series join gives.
        key = self.dim_alias[bucketed.key]
        outputs = [_alias(start.copy(), key)]
        outputs += [_alias(_col(f"m{j}", "__rolled"), f"m{j}") for j in range(len(group.measures))]
        padded = _from(_select(*outputs), series)
        rolled = exp.Subquery(this=select, alias=exp.TableAlias(this=_ident("__rolled")))
        return _join(padded, rolled, exp.EQ(this=_col(key, "__rolled"), expression=start.copy()), "LEFT")

    def _date_range_of(self, member: Dimension | None) -> Condition | None:
        """The timeDimensions dateRange condition of `member` (or of any time dimension if None)."""
        for node in self.query.where:
            is_range = isinstance(node, Condition) and node.from_time_dimension
            if is_range and (member is None or node.ref.member is member):
                return node
        return None

    def _series(self, group: MeasureGroup, bucketed: OutputDimension | None, ranged: Condition | None):
        """A derived table of buckets (b, e) in the query's wall clock."""
        alias = exp.TableAlias(this=_ident("__series"), columns=[_ident("b"), _ident("e")])
        if ranged is not None:
            whole: DateRange = ranged.values[0]
            spans = [whole] if bucketed is None else buckets(whole, bucketed.granularity, MAX_BUCKETS)
            if spans is not None:
                rows = [
                    exp.Tuple(expressions=[timestamp_literal(s.start), timestamp_literal(s.end)])
                    for s in spans
                ]
                return exp.Values(expressions=rows, alias=alias)
        assert bucketed is not None
        start = self._dimension_value(bucketed)
        end = exp.DateAdd(
            this=start.copy(), expression=exp.Literal.number(1), unit=exp.var(bucketed.granularity)
        )
        found = self._tree_select(group.tree, [_alias(start, "b"), _alias(end, "e")])
        found.set("distinct", exp.Distinct())
        self._where(found)
        return exp.Subquery(this=found, alias=exp.TableAlias(this=_ident("__series")))

    def _ungrouped(self) -> exp.Select:
        """One result row per row of the root cube (Cube's `ungrouped`): no GROUP BY, measures per row."""
        groups = self.plan.groups
        if len(groups) > 1 or (groups and groups[0].multiplied):
            cubes = ", ".join(sorted({g.cube for g in groups}))
            raise QueryError(
                f"an ungrouped query reads the rows of one cube; these measures come from {cubes} or "
                "reach their dimensions through a one_to_many join"
            )
        tree = groups[0].tree if groups else self.plan.dimension_tree
        assert tree is not None
        outputs = [_alias(self._dimension_value(d), d.key, quoted=True) for d in self.query.dimensions]
        values: dict[str, exp.Expression] = {}
        for ref in self.query.measures + tuple(_measure_refs(self.query.having)):
            try:
                values[ref.member.path] = aggregates.row_value(ref.member, self.model.cubes)
            except ValueError as exc:
                raise QueryError(f"ungrouped query: {exc}", member=ref.name) from None
        outputs += [
            _alias(values[ref.member.path].copy(), ref.name, quoted=True) for ref in self.query.measures
        ]
        select = self._where(self._tree_select(tree, outputs))
        having = [
            self._filter(node, lambda ref: values[ref.member.path].copy()) for node in self.query.having
        ]
        if having:
            where = select.args.get("where")
            parts = [where.this, *having] if where is not None else having
            select.set("where", exp.Where(this=_and(parts)))
        return select

    def _dimension_only(self) -> exp.Select:
        assert self.plan.dimension_tree is not None
        outputs = [_alias(self._dimension_value(d), d.key, quoted=True) for d in self.query.dimensions]
        select = self._tree_select(self.plan.dimension_tree, outputs)
        self._where(select)
        return _group_by_position(select, len(outputs))

    def _tree_select(self, tree: JoinTree, outputs: list[exp.Expression]) -> exp.Select:
        select = _from(_select(*outputs), self._source(self.model.cubes[tree.root]))
        parent = {step.child: step.parent for step in tree.steps}
        inner: set[str] = set()
        for cube in tree.required:  # the path to a view's root must match, as in Cube's view join tree
            while cube in parent:
                inner.add(cube)
                cube = parent[cube]
        for step in tree.steps:
            side = "" if step.child in inner else "LEFT"
            _join(select, self._source(self.model.cubes[step.child]), self._copy(step.join.condition), side)
        return select

    def _source(self, cube: Cube) -> exp.Expression:
        source = self._copy(cube.source)
        if self.source_hook is not None:
            source = self.source_hook(cube, source)
        alias = exp.TableAlias(this=_ident(cube.name))
        if isinstance(source, exp.Table):
            source.set("alias", alias)
            return source
        return exp.Subquery(this=source.this if isinstance(source, exp.Subquery) else source, alias=alias)

    def _dimension_outputs(self) -> list[exp.Expression]:
        return [_alias(self._dimension_value(d), self.dim_alias[d.key]) for d in self.query.dimensions]

    def _where(self, select: exp.Select) -> exp.Select:
        conditions = [self._filter(node, self._member_value) for node in self.query.where]
        conditions += [parenthesize(self._copy(s.member.expression)) for s in self.query.segments]
        if conditions:
            select.set("where", exp.Where(this=_and(conditions)))
        return select

    @staticmethod
    def _copy(tree: exp.Expression | None) -> exp.Expression:
        assert tree is not None
        return tree.copy()

    # -- values ----------------------------------------------------------------------------------

    def _aggregate(self, measure: Measure) -> exp.Expression:
        assert measure.aggregate is not None
        return measure.aggregate.copy()

    def _measure_value(self, measure: Measure, measure_col: dict[str, exp.Expression]) -> exp.Expression:
        if not measure.is_derived:
            return measure_col[measure.path].copy()
        assert measure.aggregate is not None
        return replace_measure_refs(measure.aggregate.copy(), lambda path: measure_col[path].copy())

    def _member_value(self, ref) -> exp.Expression:
        member = ref.member
        assert member.expression is not None
        return parenthesize(member.expression.copy())

    def _dimension_value(self, dim: OutputDimension) -> exp.Expression:
        if dim.granularity is None:
            return self._member_value(dim.ref)
        return exp.TimestampTrunc(this=self._local_time(dim), unit=exp.var(dim.granularity.upper()))

    def _local_time(self, dim: OutputDimension) -> exp.Expression:
        """The time as wall clock in the query's zone (stored times are UTC, as in Cube)."""
        value = self._member_value(dim.ref)
        if self.query.timezone != "UTC" and dim.ref.member.path not in self.model.calendar_dates:
            value = exp.ConvertTimezone(
                source_tz=exp.Literal.string("UTC"),
                target_tz=exp.Literal.string(self.query.timezone),
                timestamp=value,
            )
        return exp.cast(value, exp.DataType.Type.TIMESTAMP, copy=False)

    # -- filters -------------------------------------------------------------------------------

    def _filter(self, node: FilterNode, value_of) -> exp.Expression:
        return self.filters.render(node, value_of)


def _shift(anchor: exp.Expression, interval: str, sign: int) -> exp.Expression:
    """`anchor` moved by a Cube interval such as '7 day' or '2 months'."""
    amount, unit = interval.split()
    cls = exp.DateAdd if sign > 0 else exp.DateSub
    return cls(
        this=anchor.copy(), expression=exp.Literal.number(int(amount)), unit=exp.var(unit.rstrip("s").upper())
    )
