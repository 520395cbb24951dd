"""The loaded semantic model: immutable objects with every reference resolved.

Built once per model version by `loader.load_models`; the compiler only reads it. Member SQL is kept
as sqlglot trees whose columns are qualified by cube name, so compiling a query copies trees and
never parses SQL text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import networkx as nx
from sqlglot import exp

from headless_bi.errors import ForbiddenError, ModelIssue, QueryError, UnknownMemberError
from headless_bi.semantic.policy import AccessPolicy

DimensionType = Literal["string", "number", "boolean", "time"]
MeasureType = Literal[
    "count", "count_distinct", "count_distinct_approx", "sum", "avg", "min", "max", "number"
]
Relationship = Literal["many_to_one", "one_to_many", "one_to_one"]

ADDITIVE_TYPES = frozenset({"count", "sum", "min", "max"})


@dataclass(frozen=True)
class Location:
    file: str
    line: int | None


@dataclass(eq=False)
class Member:
    """Shared fields of dimensions, measures and segments."""

    cube: str
    name: str
    title: str
    description: str | None
    public: bool
    meta: dict[str, Any]
    location: Location
    sql_text: str | None
    # Resolved expression with columns qualified by cube name; set by the loader.
    expression: exp.Expression | None = None
    # Every cube the expression reads (always includes the owner unless it is a constant).
    cubes: frozenset[str] = frozenset()
    # What roles that see this member masked get instead (Cube's `mask`); NULL when not given.
    mask: exp.Expression | None = None
    # The members (`cube.member`) whose SQL this member's SQL is built from, directly: a member built
    # on a member the user may not see is hidden or masked with it (see `security/govern.py`).
    reads: frozenset[str] = frozenset()

    @property
    def path(self) -> str:
        return f"{self.cube}.{self.name}"

    @property
    def synonyms(self) -> list[str]:
        value = self.meta.get("synonyms") or []
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@dataclass(eq=False)
class Dimension(Member):
    type: DimensionType = "string"
    primary_key: bool = False
    format: str | None = None


@dataclass(frozen=True)
class RollingWindow:
    """Cube's rolling_window: each side is 'unbounded', an interval like '7 day', or None if unset.

    As in Cube, an unset side stops at the bucket's own edge; 'unbounded' removes that bound.
    """

    trailing: str | None
    leading: str | None
    offset: Literal["start", "end"] = "end"


@dataclass(eq=False)
class Measure(Member):
    type: MeasureType = "count"
    format: str | None = None
    filters: tuple[exp.Expression, ...] = ()
    rolling_window: RollingWindow | None = None
    # The aggregate over the cube's rows (with MeasureRef leaves for derived `number` measures).
    aggregate: exp.Expression | None = None
    # For derived `number` measures: the base measures it is computed from.
    depends_on: tuple[str, ...] = ()

    @property
    def is_derived(self) -> bool:
        """A `number` measure made only of other measures: computed after aggregation."""
        return self.type == "number" and bool(self.depends_on)


@dataclass(eq=False)
class Segment(Member):
    pass


@dataclass(frozen=True)
class Join:
    """A join edge as declared on `source`, with `sql` resolved to a condition tree."""

    source: str
    target: str
    relationship: Relationship
    condition: exp.Expression
    location: Location

    def seen_from(self, cube: str) -> Relationship:
        """The relationship when the edge is walked starting at `cube`."""
        if cube == self.source or self.relationship == "one_to_one":
            return self.relationship
        return "one_to_many" if self.relationship == "many_to_one" else "many_to_one"


@dataclass(eq=False)
class Cube:
    name: str
    title: str
    description: str | None
    public: bool
    meta: dict[str, Any]
    location: Location
    source: exp.Expression  # a Table or a Subquery, unaliased
    dimensions: dict[str, Dimension] = field(default_factory=dict)
    measures: dict[str, Measure] = field(default_factory=dict)
    segments: dict[str, Segment] = field(default_factory=dict)
    joins: dict[str, Join] = field(default_factory=dict)
    access_policy: tuple[AccessPolicy, ...] = ()

    @property
    def primary_key(self) -> list[Dimension]:
        return [d for d in self.dimensions.values() if d.primary_key]

    def members(self) -> Iterator[Member]:
        yield from self.dimensions.values()
        yield from self.measures.values()
        yield from self.segments.values()


@dataclass(frozen=True)
class ViewMember:
    """A member exposed by a view: an alias of a cube member reached along `join_path`."""

    view: str
    name: str
    target: Member
    join_path: tuple[str, ...]
    title: str
    description: str | None

    @property
    def path(self) -> str:
        return f"{self.view}.{self.name}"


@dataclass(eq=False)
class View:
    name: str
    title: str
    description: str | None
    public: bool
    meta: dict[str, Any]
    location: Location
    members: dict[str, ViewMember] = field(default_factory=dict)
    join_paths: tuple[tuple[str, ...], ...] = ()
    access_policy: tuple[AccessPolicy, ...] = ()


@dataclass(frozen=True)
class ResolvedMember:
    """A query's reference to a member: the cube member, and the join path a view pinned, if any."""

    name: str  # as the query wrote it: cube.member or view.member
    member: Member
    join_path: tuple[str, ...] | None = None

    @property
    def kind(self) -> str:
        return _KIND[type(self.member)]


_KIND: dict[type, str] = {Dimension: "dimension", Measure: "measure", Segment: "segment"}


@dataclass(eq=False)
class SemanticModel:
    """All cubes and views of one model version, with the join graph."""

    cubes: dict[str, Cube]
    views: dict[str, View]
    graph: nx.Graph
    dialect: str = "duckdb"
    version: str = ""
    warnings: list[ModelIssue] = field(default_factory=list)
    # Time dimensions whose column holds calendar dates (DATE): no time-zone shift applies to them.
    calendar_dates: frozenset[str] = frozenset()
    # Members the security context this model was governed for may not use (`cube.m` / `view.m`):
    # naming one is FORBIDDEN, and they are left out of listings and "did you mean".
    denied: frozenset[str] = frozenset()

    def with_calendar_dates(self, paths: frozenset[str]) -> SemanticModel:
        """This model, knowing which time dimensions hold calendar dates (found by the warehouse).

        Cube reads every time as a UTC instant, which moves a date to the previous day west of UTC;
        a calendar date has no zone, so its buckets and ranges must not shift.
        """
        return replace(self, calendar_dates=frozenset(paths))

    def resolve(self, name: str, *, expect: str | None = None, where: str | None = None) -> ResolvedMember:
        """Look up `cube.member` or `view.member`; unknown names get a 'did you mean'."""
        if name in self.denied:
            raise ForbiddenError(f"you do not have access to '{name}'" + (f" (in {where})" if where else ""))
        owner, _, member_name = name.partition(".")
        if not member_name or "." in member_name:
            raise UnknownMemberError(name, self._member_names(expect), kind=expect or "member", where=where)
        found: ResolvedMember | None = None
        # `public: false` cubes, views and members are not queryable; a view may expose the members of
        # a private cube, but not a member that is itself private.
        if owner in self.cubes and self.cubes[owner].public:
            member = _find(self.cubes[owner], member_name)
            found = ResolvedMember(name, member) if member and member.public else None
        elif owner in self.views and self.views[owner].public:
            alias = self.views[owner].members.get(member_name)
            visible = alias is not None and alias.target.public
            found = ResolvedMember(name, alias.target, alias.join_path) if visible else None
        if found is None:
            raise UnknownMemberError(name, self._member_names(expect), kind=expect or "member", where=where)
        if expect and found.kind != expect:
            raise QueryError(
                f"'{name}' is a {found.kind}, not a {expect}"
                + (f" (in {where})" if where else "")
                + f"; put it under {_SECTION[found.kind]}.",
                member=name,
            )
        return found

    def _member_names(self, kind: str | None) -> list[str]:
        names = []
        for cube in self.cubes.values():
            for m in cube.members():
                wanted = kind is None or _KIND[type(m)] == kind
                if cube.public and m.public and wanted and m.path not in self.denied:
                    names.append(m.path)
        for view in self.views.values():
            for vm in view.members.values() if view.public else ():
                wanted = kind is None or _KIND[type(vm.target)] == kind
                if vm.target.public and wanted and vm.path not in self.denied:
                    names.append(vm.path)
        return names

    def all_members(self) -> Iterator[Member]:
        for cube in self.cubes.values():
            yield from cube.members()


_SECTION = {"dimension": "dimensions or timeDimensions", "measure": "measures", "segment": "segments"}


def _find(cube: Cube, name: str) -> Member | None:
    return cube.dimensions.get(name) or cube.measures.get(name) or cube.segments.get(name)
