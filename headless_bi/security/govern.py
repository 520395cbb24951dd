"""Access policies applied to one user: the model as that user may see it, and the row filters.

`govern(model, security)` returns a `Governance` (cached per model version and policy key):

- `model`: the same cubes and views with members the user may not see listed in `model.denied`
  (FORBIDDEN when named, absent from schema, `meta` and `ask`) and masked members swapped for
  copies whose SQL is the mask, so they return and filter only the masked value;
- `source_filter(cube)`: the predicate added to the cube's FROM source wherever a query reads it
  (every measure group, join, semi-join and subquery), before any aggregation;
- `restrict(query)`: the row filters of the views a query names, added as ordinary filters.

Policy semantics are Cube's: policies matching the user combine with OR; once a cube or view has
policies, a user no policy matches sees nothing of it; a missing user attribute denies the rows of
the policy that needs it (never `WHERE 1 = 1`). When querying a view only the view's member-level
rules apply; row filters of the view and of every cube read both apply.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlglot import exp

from headless_bi.errors import QueryError
from headless_bi.security.context import SecurityContext
from headless_bi.semantic.filter_sql import FilterSql
from headless_bi.semantic.model import (
    Cube,
    Dimension,
    Measure,
    Member,
    ResolvedMember,
    Segment,
    SemanticModel,
    View,
    ViewMember,
)
from headless_bi.semantic.policy import PLACEHOLDER, AccessPolicy
from headless_bi.semantic.query import Condition, FilterNode, Group, Query, parse_filter
from headless_bi.semantic.references import parenthesize

_CACHE: OrderedDict[tuple[Any, ...], Governance] = OrderedDict()
_CACHE_SIZE = 256
_LOCK = threading.Lock()


class _Denied(Exception):
    """A policy's row filter cannot be built for this user (missing or unusable attribute)."""


@dataclass(frozen=True)
class Grant:
    """What the matching policies of one cube or view give one user."""

    visible: Callable[[str], bool]
    masked: Callable[[str], bool]
    # Row filters: None for every row; otherwise alternatives (OR) of filter lists (AND); () for none.
    rows: tuple[tuple[dict[str, Any], ...], ...] | None


@dataclass
class Governance:
    model: SemanticModel
    base: SemanticModel
    security: SecurityContext
    cube_rows: dict[str, tuple[tuple[dict[str, Any], ...], ...]] = field(default_factory=dict)
    view_rows: dict[str, tuple[tuple[dict[str, Any], ...], ...]] = field(default_factory=dict)
    _predicates: dict[str, exp.Expression] = field(default_factory=dict)

    @property
    def restricts_rows(self) -> bool:
        return bool(self.cube_rows or self.view_rows)

    def source_filter(self, cube: Cube, source: exp.Expression) -> exp.Expression:
        """`source` of `cube`, narrowed to the rows the user may read (a SourceHook)."""
        predicate = self._predicates.get(cube.name)
        if predicate is None and cube.name in self.cube_rows:
            base_cube = self.base.cubes[cube.name]
            predicate = self._predicate(
                self.cube_rows[cube.name],
                lambda name: ResolvedMember(f"{cube.name}.{name}", base_cube.dimensions[name]),
                "UTC",
                None,
            )
            self._predicates[cube.name] = predicate
        if predicate is None:
            return source
        inner = source.copy() if isinstance(source, exp.Table) else exp.Subquery(this=source.this)
        alias = exp.TableAlias(this=exp.to_identifier(cube.name, quoted=True))
        inner.set("alias", alias)
        select = exp.Select(expressions=[exp.Star()])
        select.set("from_", exp.From(this=inner))
        select.set("where", exp.Where(this=predicate.copy()))
        return exp.Subquery(this=select)

    def restrict(self, query: Query) -> Query:
        """`query` with the row filters of every view it names added to its filters."""
        if not self.view_rows:
            return query
        names = {ref.name.split(".", 1)[0] for ref in _refs(query)}
        extra: list[FilterNode] = []
        for view_name in sorted(names & set(self.view_rows)):
            view = self.base.views[view_name]
            extra.append(self._view_filter(view, self.view_rows[view_name], query))
        if not extra:
            return query
        return replace(query, where=(*query.where, *extra))

    def _view_filter(
        self, view: View, alternatives: tuple[tuple[dict[str, Any], ...], ...], query: Query
    ) -> FilterNode:
        lookup = _qualified(lambda name: _view_ref(view, name))
        options: list[FilterNode] = []
        for filters in alternatives:
            try:
                parts = tuple(
                    parse_filter(self.base, f, timezone=query.timezone, now=query.now, lookup=lookup)
                    for f in filters
                )
            except QueryError:
                continue  # an attribute value that does not fit the member's type: no rows from it
            options.append(Group("and", parts) if len(parts) != 1 else parts[0])
        if not options:  # no rows: `m IS NOT NULL AND m IS NULL` on a dimension the policies filter on
            first = next(n for n, m in view.members.items() if isinstance(m.target, Dimension))
            ref = _view_ref(view, first)
            return Group("and", (Condition(ref, "set"), Condition(ref, "notSet")))
        return Group("or", tuple(options)) if len(options) > 1 else options[0]

    def _predicate(
        self,
        alternatives: tuple[tuple[dict[str, Any], ...], ...],
        lookup: Callable[[str], ResolvedMember],
        timezone: str,
        now: Any,
    ) -> exp.Expression:
        renderer = FilterSql(self.base.calendar_dates, timezone)
        options: list[exp.Expression] = []
        for filters in alternatives:
            try:
                parts = [
                    renderer.render(
                        parse_filter(self.base, f, timezone=timezone, now=now, lookup=_qualified(lookup)),
                        lambda ref: parenthesize(ref.member.expression.copy()),
                    )
                    for f in filters
                ]
            except QueryError:
                continue
            options.append(exp.and_(*parts, copy=False) if len(parts) > 1 else parts[0])
        if not options:
            return exp.false()
        return exp.Paren(this=exp.or_(*options, copy=False)) if len(options) > 1 else options[0]


def _qualified(lookup: Callable[[str], ResolvedMember]) -> Callable[[str], ResolvedMember]:
    """Policy filters name members relative to their owner; the parser may hand either form."""
    return lambda name: lookup(name.split(".", 1)[1] if "." in name else name)


def _view_ref(view: View, name: str) -> ResolvedMember:
    alias = view.members[name]
    return ResolvedMember(f"{view.name}.{name}", alias.target, alias.join_path)


def _refs(query: Query) -> list[ResolvedMember]:
    refs = [*query.measures, *(d.ref for d in query.dimensions), *query.segments]

    def walk(nodes: tuple[FilterNode, ...]) -> None:
        for node in nodes:
            if isinstance(node, Group):
                walk(node.children)
            else:
                refs.append(node.ref)

    walk(query.where)
    walk(query.having)
    return refs


def govern(model: SemanticModel, security: SecurityContext) -> Governance:
    """`model` as `security` may see it; the same object for the same model version and policy key."""
    key = (id(model), model.version, model.calendar_dates, security.policy_key)
    with _LOCK:
        found = _CACHE.get(key)
        if found is not None and found.base is model:
            _CACHE.move_to_end(key)
            return found
    governance = _build(model, security)
    with _LOCK:
        _CACHE[key] = governance
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return governance


def _build(model: SemanticModel, security: SecurityContext) -> Governance:
    attributes = security.attribute_map
    denied: set[str] = set()
    cubes = dict(model.cubes)
    views = dict(model.views)
    cube_rows: dict[str, tuple[tuple[dict[str, Any], ...], ...]] = {}
    view_rows: dict[str, tuple[tuple[dict[str, Any], ...], ...]] = {}
    masked: set[str] = set()
    for cube in model.cubes.values():
        if not cube.access_policy:
            continue
        grant = _grant(cube.access_policy, security.roles, attributes)
        for member in cube.members():
            if grant.visible(member.name):
                continue
            if grant.masked(member.name) and not isinstance(member, Segment):
                masked.add(member.path)
            else:
                denied.add(member.path)
        if grant.rows is not None:
            cube_rows[cube.name] = grant.rows
    _withhold_dependents(model, denied, masked)
    for cube in model.cubes.values():
        swapped = {m.name: _masked(m) for m in cube.members() if m.path in masked}
        if swapped:
            cubes[cube.name] = replace(
                cube,
                dimensions={n: swapped.get(n, m) for n, m in cube.dimensions.items()},  # type: ignore[misc]
                measures={n: swapped.get(n, m) for n, m in cube.measures.items()},  # type: ignore[misc]
            )
    for view in model.views.values():
        if not view.access_policy:
            continue
        grant = _grant(view.access_policy, security.roles, attributes)
        members: dict[str, ViewMember] = {}
        for name, alias in view.members.items():
            if grant.visible(name):
                members[name] = alias
            elif grant.masked(name) and not isinstance(alias.target, Segment):
                members[name] = replace(alias, target=_masked(alias.target))
            else:
                members[name] = alias
                denied.add(alias.path)
        views[view.name] = replace(view, members=members)
        if grant.rows is not None:
            view_rows[view.name] = grant.rows
    if not denied and cubes == model.cubes and views == model.views:
        governed = model
    else:
        governed = replace(
            model,
            cubes=cubes,
            views=views,
            denied=frozenset(denied),
            version=f"{model.version}+{security.policy_key[:12]}",
        )
    return Governance(governed, model, security, cube_rows, view_rows)


def _withhold_dependents(model: SemanticModel, denied: set[str], masked: set[str]) -> None:
    """Add to `denied` / `masked` the members built on another cube's denied / masked member.

    Member SQL is inlined at load (`{customer.phone}` becomes customer's expression), so a member of
    a cube without policies could otherwise show what the user may not see, or sees masked. Within
    one cube its own policies decide (a policy may show `LEFT({name}, 1)` but not `name`).
    """
    index = {m.path: m for m in model.all_members()}
    state: dict[str, str | None] = {}

    def withheld(path: str) -> str | None:  # "denied", "masked" or None for what `path` is built on
        if path not in state:
            state[path] = None  # the loader rejects reference cycles; this only stops a revisit
            member, found = index[path], None
            for read in sorted(member.reads & index.keys()):
                other_cube = index[read].cube != member.cube
                own = "denied" if read in denied else "masked" if read in masked else None
                why = (own if other_cube else None) or withheld(read)
                if why == "denied" or (why == "masked" and found is None):
                    found = why
            state[path] = found
        return state[path]

    for path, member in index.items():
        if path in denied or path in masked:
            continue
        why = withheld(path)
        if why == "denied" or (why == "masked" and isinstance(member, Segment)):
            denied.add(path)
        elif why == "masked":
            masked.add(path)


def _grant(policies: tuple[AccessPolicy, ...], roles: frozenset[str], attributes: Mapping[str, Any]) -> Grant:
    matching = [p for p in policies if p.applies_to(roles, attributes)]
    if not matching:
        return Grant(lambda _n: False, lambda _n: False, ())

    def visible(name: str) -> bool:
        return any(p.allows(name) for p in matching)

    def masked(name: str) -> bool:
        return any(p.masks(name) for p in matching)

    with_rows = [p for p in matching if p.row_level is not None]
    if not with_rows or any(p.row_level.allow_all for p in with_rows if p.row_level):
        return Grant(visible, masked, None)
    alternatives = []
    for policy in with_rows:
        assert policy.row_level is not None
        try:
            alternatives.append(tuple(_bind(f, attributes) for f in policy.row_level.filters))
        except _Denied:
            continue
    return Grant(visible, masked, tuple(alternatives))


def _bind(item: dict[str, Any], attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A policy filter with `{ userAttributes.x }` replaced by the user's value(s)."""
    for kind in ("and", "or"):
        if kind in item:
            return {kind: [_bind(child, attributes) for child in item[kind]]}
    values = item.get("values")
    if values is None:
        return dict(item)
    bound: list[Any] = []
    for value in values:
        match = PLACEHOLDER.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            bound.append(value)
            continue
        found = attributes.get(match.group(1))
        if found is None or found == () or found == "":
            raise _Denied(match.group(1))
        bound.extend(found if isinstance(found, tuple | list) else [found])
    return {**item, "values": bound}


def _masked(member: Member) -> Member:
    mask = member.mask.copy() if member.mask is not None else exp.Null()
    if isinstance(member, Measure):
        # Still an aggregate, so a masked measure keeps the query's grain: MAX of a per-row mask, or the
        # mask itself when it aggregates (e.g. a rounded SUM).
        value = mask if mask.find(exp.AggFunc) else exp.Max(this=mask)
        return replace(member, aggregate=value, type="max", depends_on=(), filters=(), rolling_window=None)
    return replace(member, expression=mask)
