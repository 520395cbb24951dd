"""Query → logical plan: which cubes aggregate which measures, joined how, at what grain.

Aggregate locality: each cube's measures are aggregated over that cube's own rows in a group of
their own, joined only to the cubes the query's dimensions, filters and segments need. When reaching
those cubes fans out (a one_to_many step), the group is *multiplied* and is aggregated over the
distinct (primary key, dimension values) of its cube instead, so no row counts twice. Groups are
combined on the dimension values afterwards; `number` measures built from other measures are
computed only then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import networkx as nx

from headless_bi.errors import QueryError
from headless_bi.semantic.model import Join, Measure, ResolvedMember, SemanticModel
from headless_bi.semantic.query import Condition, FilterNode, Group, Query


@dataclass(frozen=True)
class JoinStep:
    parent: str
    child: str
    join: Join
    fans_out: bool  # walking parent → child can repeat parent rows


@dataclass(frozen=True)
class JoinTree:
    root: str
    steps: tuple[JoinStep, ...]
    # Cubes whose row must exist (a view's root): the LEFT JOIN to them acts as an inner join.
    required: frozenset[str] = frozenset()

    @property
    def cubes(self) -> list[str]:
        return [self.root, *(s.child for s in self.steps)]

    @property
    def fans_out(self) -> bool:
        return any(s.fans_out for s in self.steps)


@dataclass
class MeasureGroup:
    """Measures of one cube aggregated together (a CTE in the SQL)."""

    cube: str
    measures: list[Measure]
    tree: JoinTree
    multiplied: bool
    # Cubes the measure expressions themselves read (joined after de-duplication when multiplied).
    measure_tree: JoinTree | None = None


@dataclass
class Plan:
    query: Query
    groups: list[MeasureGroup]
    # For dimension-only queries: the join tree the dimensions are read from.
    dimension_tree: JoinTree | None = None
    # Base measures each output or filtered measure needs, keyed by measure path.
    base_measures: list[Measure] = field(default_factory=list)

    def explain(self) -> str:
        lines = []
        for i, group in enumerate(self.groups):
            how = "de-duplicated by primary key (one_to_many join)" if group.multiplied else "direct"
            joins = (
                " ".join(f"→{s.child}{'*' if s.fans_out else ''}" for s in group.tree.steps) or "(no joins)"
            )
            lines.append(
                f"group {i}: {group.cube} [{how}] joins {joins}; "
                f"measures {', '.join(m.path for m in group.measures)}"
            )
        if self.dimension_tree:
            lines.append(
                f"dimensions from {self.dimension_tree.root} joins "
                + " ".join(f"→{s.child}" for s in self.dimension_tree.steps)
            )
        return "\n".join(lines)


def build_plan(model: SemanticModel, query: Query) -> Plan:
    context = _context_refs(query)
    base = _base_measures(model, query)
    if not base:
        root = _dimension_root(model, context)
        return Plan(query, [], dimension_tree=_join_tree(model, root, context))
    by_cube: dict[str, list[Measure]] = {}
    for measure in base:
        key = measure.cube if measure.rolling_window is None else f"{measure.cube}#{measure.path}"
        by_cube.setdefault(key, []).append(measure)
    groups = []
    for measures in by_cube.values():
        cube = measures[0].cube
        tree = _join_tree(model, cube, context)
        extra = sorted({c for m in measures for c in m.cubes} - {cube})
        measure_tree = None
        if extra:
            measure_tree = _join_tree(model, cube, [_CubeRef(c) for c in extra])
            if measure_tree.fans_out:
                culprit = next(s.child for s in measure_tree.steps if s.fans_out)
                raise QueryError(
                    f"measure(s) {', '.join(m.path for m in measures)} read cube '{culprit}', which "
                    f"is reached from '{cube}' through a one_to_many join; the value is not defined"
                )
        multiplied = tree.fans_out
        if not multiplied and measure_tree is not None:
            tree = _merge(tree, measure_tree)
            measure_tree = None
        groups.append(MeasureGroup(cube, measures, tree, multiplied, measure_tree))
    return Plan(query, groups, base_measures=base)


@dataclass(frozen=True)
class _CubeRef:
    """A cube a query needs: with the join path a view pinned, or reached through the cube `via`
    whose member reads it (a dimension `{customers.name}` on orders joins customers *from orders*)."""

    cube: str
    join_path: tuple[str, ...] | None = None
    via: _CubeRef | None = None
    required: bool = False  # a view's root: rows must belong to it, as in Cube's view join tree


def _context_refs(query: Query) -> list[_CubeRef]:
    refs: list[ResolvedMember] = [d.ref for d in query.dimensions]
    refs.extend(_condition_refs(query.where))
    refs.extend(query.segments)
    out: list[_CubeRef] = []
    for ref in refs:
        owner = _CubeRef(ref.member.cube, ref.join_path)
        out.append(owner)
        out.extend(_CubeRef(cube, via=owner) for cube in sorted(ref.member.cubes - {ref.member.cube}))
    paths = [r.join_path for r in (*query.measures, *refs) if r.join_path]
    out.extend(_CubeRef(path[0], path, required=True) for path in dict.fromkeys(paths))
    return list(dict.fromkeys(out))


def _condition_refs(nodes: tuple[FilterNode, ...]) -> list[ResolvedMember]:
    found: list[ResolvedMember] = []
    for node in nodes:
        if isinstance(node, Condition):
            found.append(node.ref)
        elif isinstance(node, Group):
            found.extend(_condition_refs(node.children))
    return found


def _base_measures(model: SemanticModel, query: Query) -> list[Measure]:
    """Measures aggregated per cube: the requested ones, those derived ones build on, and HAVING's."""
    wanted: list[Measure] = [ref.member for ref in query.measures]  # type: ignore[misc]
    wanted.extend(ref.member for ref in _condition_refs(query.having))  # type: ignore[misc]
    out: dict[str, Measure] = {}
    for measure in wanted:
        if measure.is_derived:
            for path in measure.depends_on:
                cube, _, name = path.partition(".")
                target = model.cubes[cube].measures[name]
                out.setdefault(target.path, target)
        else:
            out.setdefault(measure.path, measure)
    return list(out.values())


def _dimension_root(model: SemanticModel, refs: list[_CubeRef]) -> str:
    """For a query without measures: the view's root, else a cube from which every other one is
    reached without fanning out (the star's centre), so the answer does not depend on the order
    the dimensions were listed in."""
    for ref in refs:
        if ref.join_path:
            return ref.join_path[0]
    candidates = list(dict.fromkeys(r.cube for r in refs))
    for cube in candidates:
        try:
            if not _join_tree(model, cube, refs).fans_out:
                return cube
        except QueryError:
            continue
    return candidates[0]


def _join_tree(model: SemanticModel, root: str, refs: list[_CubeRef]) -> JoinTree:
    parent_of: dict[str, tuple[str, Join]] = {}
    order: list[str] = []
    for ref in refs:
        route = _route(model, root, ref)
        for a, b in pairwise(route):
            join = _edge_join(model, a, b)
            known = parent_of.get(b)
            if b == root or (known is not None and known[0] == a):
                continue
            if known is not None:
                raise QueryError(
                    f"cube '{b}' is reached by two different join paths in one query (from '{known[0]}' and "
                    f"from '{a}'); query through a view whose join_path says which one is meant",
                    member=ref.cube,
                )
            parent_of[b] = (a, join)
            order.append(b)
    steps = []
    fanned: set[str] = set()
    for child in order:
        parent, join = parent_of[child]
        fans = parent in fanned or join.seen_from(parent) == "one_to_many"
        if fans:
            fanned.add(child)
        steps.append(JoinStep(parent, child, join, fans))
    required = frozenset(r.cube for r in refs if r.required and r.cube != root)
    return JoinTree(root, tuple(steps), required)


def _route(model: SemanticModel, root: str, ref: _CubeRef) -> list[str]:
    if ref.via is not None:
        head = _route(model, root, ref.via)
        return head + _route(model, ref.via.cube, _CubeRef(ref.cube))[1:]
    target = ref.cube
    if target == root:
        return [root]
    if ref.join_path and root in ref.join_path:
        path = list(ref.join_path)
        i, j = path.index(root), path.index(target)
        return path[i : j + 1] if i <= j else list(reversed(path[j : i + 1]))
    if ref.join_path:
        # The root (a measure's cube) is outside the view's path: reach the path's start first.
        head = _route(model, root, _CubeRef(ref.join_path[0]))
        return head + list(ref.join_path[1 : ref.join_path.index(target) + 1])
    try:
        paths = []
        for path in nx.all_shortest_paths(model.graph, root, target):
            paths.append(path)
            if len(paths) > 1:
                break
    except nx.NetworkXNoPath:
        raise QueryError(
            f"no join path from cube '{root}' to cube '{target}'; add a join between them in the model",
            member=target,
        ) from None
    if len(paths) > 1:
        shown = " and ".join(" → ".join(p) for p in paths)
        raise QueryError(
            f"ambiguous join path from '{root}' to '{target}': {shown}; query through a view "
            "whose join_path says which one is meant",
            member=target,
        )
    return paths[0]


def _edge_join(model: SemanticModel, a: str, b: str) -> Join:
    joins: dict[str, Join] = model.graph.edges[a, b]["joins"]
    return joins.get(a) or joins[b]


def _merge(tree: JoinTree, extra: JoinTree) -> JoinTree:
    known = {s.child for s in tree.steps}
    steps = list(tree.steps) + [s for s in extra.steps if s.child not in known]
    return JoinTree(tree.root, tuple(steps), tree.required)
