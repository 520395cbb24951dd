"""YAML model files → `SemanticModel`, collecting every located problem before failing.

Three passes: shape (cerberus) and objects per file; member SQL resolved into trees across cubes
(which is where reference and cycle errors appear); then the join graph, views and whole-model
checks. All issues are gathered so `headless-bi validate` can list them at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

import networkx as nx
from sqlglot import exp
from sqlglot.errors import SqlglotError

from headless_bi.errors import ModelError, ModelIssue, did_you_mean
from headless_bi.semantic import aggregates
from headless_bi.semantic.model import (
    Cube,
    Dimension,
    Join,
    Location,
    Measure,
    Member,
    RollingWindow,
    Segment,
    SemanticModel,
    View,
    ViewMember,
)
from headless_bi.semantic.policy import read_policies
from headless_bi.semantic.references import (
    MeasureRef,
    Reference,
    SnippetError,
    parenthesize,
    parse_snippet,
    split_references,
    substitute,
)
from headless_bi.semantic.schema import RELATIONSHIPS, check_shape
from headless_bi.semantic.yaml_source import LocatedDict, read_yaml, snake_case_keys

MODEL_SUFFIXES = (".yml", ".yaml")


def model_files(directory: Path | str) -> list[Path]:
    root = Path(directory)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix in MODEL_SUFFIXES and p.is_file())


def load_models(directory: Path | str, *, dialect: str = "duckdb") -> SemanticModel:
    """Load and check every model file under `directory`; raise ModelError listing all problems."""
    model, issues = check_models(directory, dialect=dialect)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise ModelError(errors)
    assert model is not None
    return model


def check_models(
    directory: Path | str, *, dialect: str = "duckdb"
) -> tuple[SemanticModel | None, list[ModelIssue]]:
    root = Path(directory)
    if not root.exists():
        return None, [ModelIssue(str(root), None, None, "no such file or directory")]
    files = model_files(root)
    if not files:
        return None, [ModelIssue(str(root), None, None, "no model files (*.yml, *.yaml) found")]
    builder = _Builder(dialect)
    digest = hashlib.sha256()
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            builder.issues.append(
                ModelIssue(str(path), None, None, f"cannot read the file as UTF-8 text: {exc}")
            )
            continue
        digest.update(str(path).encode() + b"\0" + text.encode())
        builder.add_file(path, text)
    model = builder.finish(version=digest.hexdigest()[:16])
    issues = sorted(builder.issues, key=lambda i: (i.file, i.line or 0))
    if model is not None:
        model.warnings = [i for i in issues if i.severity == "warning"]
    return model, issues


class _Builder:
    def __init__(self, dialect: str):
        self.dialect = dialect
        self.issues: list[ModelIssue] = []
        self.cubes: dict[str, Cube] = {}
        self.raw_joins: list[tuple[Cube, LocatedDict]] = []
        self.raw_views: list[LocatedDict] = []
        self.raw_policies: list[tuple[str, LocatedDict]] = []  # (cube or view name, its definition)
        self.raw_masks: list[tuple[Member, Any]] = []
        self._resolving: list[str] = []
        self._cycles: set[frozenset[str]] = set()

    def issue(
        self, where: Location | LocatedDict, member: str | None, message: str, severity: str = "error"
    ) -> None:
        if isinstance(where, LocatedDict):
            where = Location(where.file, where.line)
        self.issues.append(ModelIssue(where.file, where.line, member, message, severity))

    # -- pass 1: objects -------------------------------------------------------------------

    def add_file(self, path: Path, text: str) -> None:
        document, issues = read_yaml(path, text)
        document = snake_case_keys(document)
        self.issues.extend(issues)
        shape_issues = check_shape(document, str(path))
        self.issues.extend(shape_issues)
        if document is None or issues or shape_issues:
            return
        for raw in document.get("cubes") or []:
            self._add_cube(raw)
        self.raw_views.extend(document.get("views") or [])

    def _add_cube(self, raw: LocatedDict) -> None:
        name = raw["name"]
        location = Location(raw.file, raw.line)
        if name in self.cubes:
            other = self.cubes[name].location
            self.issue(raw, name, f"cube '{name}' is defined twice (also at {other.file}:{other.line})")
            return
        if "sql_table" not in raw and "sql" not in raw:
            self.issue(raw, name, "a cube needs 'sql_table' or 'sql'")
            return
        source = self._cube_source(raw)
        if source is None:
            return
        cube = Cube(
            name=name,
            title=raw.get("title") or _titleize(name),
            description=raw.get("description"),
            public=raw.get("public", raw.get("shown", True)),
            meta=dict(raw.get("meta") or {}),
            location=location,
            source=source,
        )
        if raw.get("access_policy"):
            self.raw_policies.append((name, raw))
        seen: dict[str, int] = {}
        for section, factory in (("dimensions", _dimension), ("measures", _measure), ("segments", _segment)):
            for item in raw.get(section) or []:
                member_name = item["name"]
                if member_name in seen:
                    self.issue(
                        item,
                        f"{name}.{member_name}",
                        f"member '{member_name}' is defined twice in cube '{name}' "
                        f"(also line {seen[member_name]})",
                    )
                    continue
                seen[member_name] = item.line
                member = factory(name, item)
                getattr(cube, section)[member_name] = member
                if "mask" in item:
                    self.raw_masks.append((member, item["mask"]))
        for item in raw.get("joins") or []:
            self.raw_joins.append((cube, item))
        self.cubes[name] = cube

    def _cube_source(self, raw: LocatedDict) -> exp.Expression | None:
        try:
            if "sql_table" in raw:
                table = exp.to_table(raw["sql_table"], dialect=self.dialect)
                if not table.name:
                    raise SnippetError(f"'sql_table' {raw['sql_table']!r} is not a table name")
                return table
            return exp.Subquery(this=parse_snippet(raw["sql"], self.dialect, query=True))
        except (SnippetError, SqlglotError, ValueError) as exc:
            self.issue(raw, raw["name"], str(exc))
            return None

    # -- pass 2: member SQL ----------------------------------------------------------------

    def resolve_member(self, member: Member) -> exp.Expression | None:
        """The member's tree with references spliced in; None (plus an issue) when it cannot be."""
        if member.expression is not None:
            return member.expression
        if member.path in self._resolving:
            loop = self._resolving[self._resolving.index(member.path) :]
            if frozenset(loop) not in self._cycles:  # report each cycle once
                self._cycles.add(frozenset(loop))
                self.issue(
                    member.location, member.path, f"circular reference: {' → '.join([*loop, member.path])}"
                )
            return None
        if member.sql_text is None:
            return None
        self._resolving.append(member.path)
        try:
            tree = self.resolve_sql(member.sql_text, self.cubes[member.cube], member)
        finally:
            self._resolving.pop()
        if tree is not None:
            member.expression = tree
            member.cubes = _tables_of(tree) & self.cubes.keys()
        return tree

    def resolve_sql(
        self, sql: str, cube: Cube, member: Member | None, location: Location | None = None
    ) -> exp.Expression | None:
        where = location or (member.location if member else cube.location)
        label = member.path if member else cube.name
        text, refs = split_references(sql)
        try:
            tree = parse_snippet(text, self.dialect)
        except SnippetError as exc:
            self.issue(where, label, str(exc))
            return None
        failed = False

        def fail(message: str) -> exp.Expression:
            nonlocal failed
            failed = True
            self.issue(where, label, message)
            return exp.null()

        def on_cube_column(ref: Reference, column: exp.Column) -> exp.Expression:
            target = cube.name if ref.owner == "CUBE" else ref.owner
            if ref.member is not None:
                return fail(f"'{{{ref.owner}.{ref.member}}}.{column.name}' is not a valid reference")
            if target not in self.cubes:
                return fail(
                    f"unknown cube '{ref.owner}' in '{{{ref.owner}}}.{column.name}'."
                    + did_you_mean(ref.owner, self.cubes)
                )
            return exp.Column(this=column.this, table=exp.to_identifier(target, quoted=True))

        def on_member(ref: Reference) -> exp.Expression:
            if ref.member is None:
                owner, name = cube, ref.owner
                if name == "CUBE" or (name in self.cubes and _find(cube, name) is None):
                    return fail(f"'{{{name}}}' names a cube; reference a column as '{{{name}}}.column'")
            else:
                owner_name = cube.name if ref.owner == "CUBE" else ref.owner
                if owner_name not in self.cubes:
                    return fail(
                        f"unknown cube '{ref.owner}' in '{{{ref.owner}.{ref.member}}}'."
                        + did_you_mean(ref.owner, self.cubes)
                    )
                owner, name = self.cubes[owner_name], ref.member
            target = _find(owner, name)
            if target is not None and member is not None:
                member.reads = member.reads | {target.path}
            if target is None:
                candidates = (
                    [m.name for m in owner.members()] if owner is cube else [m.path for m in owner.members()]
                )
                shown = name if owner is cube else f"{owner.name}.{name}"
                return fail(f"unknown member '{shown}'." + did_you_mean(shown, candidates))
            if isinstance(target, Measure):
                if isinstance(member, Measure) and member.type == "number":
                    return MeasureRef(this=target.path)
                kind = "measure" if isinstance(member, Measure) else type(member).__name__.lower()
                hint = "; use type: number to build on other measures" if kind == "measure" else ""
                return fail(f"{kind} cannot reference measure '{target.path}'{hint}")
            if isinstance(target, Segment) and not isinstance(member, Segment):
                return fail(f"segment '{target.path}' can only be referenced from another segment")
            resolved = self.resolve_member(target)
            if resolved is None:
                nonlocal failed
                failed = True
                return exp.null()
            return parenthesize(resolved.copy())

        def on_plain_column(column: exp.Column) -> exp.Expression:
            if column.find_ancestor(exp.Select) is not None:
                return column
            return exp.Column(this=column.this, table=exp.to_identifier(cube.name, quoted=True))

        tree = substitute(
            tree, refs, on_cube_column=on_cube_column, on_member=on_member, on_plain_column=on_plain_column
        )
        return None if failed else tree

    def resolve_all(self) -> None:
        for cube in self.cubes.values():
            for member in cube.members():
                self.resolve_member(member)
            for measure in cube.measures.values():
                self._resolve_measure_filters(cube, measure)
        for cube in self.cubes.values():
            for measure in cube.measures.values():
                problem = aggregates.prepare(measure, self.cubes)
                if problem:
                    self.issue(measure.location, measure.path, problem)

    def _resolve_measure_filters(self, cube: Cube, measure: Measure) -> None:
        raw_filters = measure.meta.pop("__filters__", [])
        trees = []
        for sql in raw_filters:
            tree = self.resolve_sql(sql, cube, measure)
            if tree is not None:
                trees.append(tree)
                measure.cubes = measure.cubes | (_tables_of(tree) & self.cubes.keys())
        measure.filters = tuple(trees)

    # -- pass 3: joins, graph, views, checks -----------------------------------------------

    def build_graph(self) -> nx.Graph:
        graph = nx.Graph()
        graph.add_nodes_from(self.cubes)
        for cube, raw in self.raw_joins:
            target = raw["name"]
            location = Location(raw.file, raw.line)
            if target not in self.cubes:
                self.issue(
                    raw,
                    f"{cube.name}.joins.{target}",
                    f"join to unknown cube '{target}'." + did_you_mean(target, self.cubes),
                )
                continue
            condition = self.resolve_sql(str(raw["sql"]), cube, None, location)
            if condition is None:
                continue
            join = Join(cube.name, target, RELATIONSHIPS[raw["relationship"]], condition, location)
            if target in cube.joins:
                self.issue(raw, f"{cube.name}.joins.{target}", f"cube '{cube.name}' joins '{target}' twice")
                continue
            cube.joins[target] = join
            if graph.has_edge(cube.name, target):
                graph.edges[cube.name, target]["joins"][cube.name] = join
            else:
                graph.add_edge(cube.name, target, joins={cube.name: join})
        return graph

    def check_primary_keys(self, graph: nx.Graph) -> None:
        """A cube whose rows can be multiplied by a join must have a key to de-duplicate them."""
        reported: set[str] = set()
        for _, _, data in graph.edges(data=True):
            for join in data["joins"].values():
                for side in (join.source, join.target):
                    cube = self.cubes[side]
                    if side in reported or not cube.measures or cube.primary_key:
                        continue
                    if join.seen_from(side) == "one_to_many":
                        reported.add(side)
                        self.issue(
                            cube.location,
                            cube.name,
                            f"cube '{side}' has measures and is on the 'one' side of the join "
                            f"{join.source} → {join.target} ({join.relationship}), so it needs a "
                            "dimension with primary_key: true to avoid double counting",
                        )

    def build_views(self, graph: nx.Graph) -> dict[str, View]:
        views: dict[str, View] = {}
        for raw in self.raw_views:
            name = raw["name"]
            if name in views or name in self.cubes:
                self.issue(raw, name, f"view name '{name}' is already used by a cube or view")
                continue
            view = View(
                name=name,
                title=raw.get("title") or _titleize(name),
                description=raw.get("description"),
                public=raw.get("public", raw.get("shown", True)),
                meta=dict(raw.get("meta") or {}),
                location=Location(raw.file, raw.line),
            )
            if raw.get("access_policy"):
                self.raw_policies.append((name, raw))
            paths = []
            for entry in raw.get("cubes") or []:
                path = tuple(entry["join_path"].split("."))
                if self._check_join_path(entry, name, path, graph):
                    paths.append(path)
                    self._add_view_members(view, entry, path)
            view.join_paths = tuple(paths)
            views[name] = view
        return views

    def _check_join_path(self, entry: LocatedDict, view: str, path: tuple[str, ...], graph: nx.Graph) -> bool:
        for step in path:
            if step not in self.cubes:
                self.issue(
                    entry,
                    view,
                    f"join_path '{entry['join_path']}': unknown cube '{step}'."
                    + did_you_mean(step, self.cubes),
                )
                return False
        for a, b in pairwise(path):
            if not graph.has_edge(a, b):
                self.issue(entry, view, f"join_path '{entry['join_path']}': no join between '{a}' and '{b}'")
                return False
        return True

    def _add_view_members(self, view: View, entry: LocatedDict, path: tuple[str, ...]) -> None:
        cube = self.cubes[path[-1]]
        prefix = f"{entry.get('alias') or cube.name}_" if entry.get("prefix") else ""
        includes = entry.get("includes", "*")
        excludes = set(entry.get("excludes") or [])
        chosen: list[tuple[str, str | None, dict[str, Any]]] = []
        if includes == "*":
            chosen = [(m.name, None, {}) for m in cube.members()]
        elif isinstance(includes, str):
            self.issue(entry, view.name, f"'includes' must be \"*\" or a list, not {includes!r}")
        else:
            for item in includes:
                spec = item if isinstance(item, dict) else {"name": item}
                if "name" not in spec:
                    self.issue(entry, view.name, f"an 'includes' entry needs a 'name': {dict(spec)}")
                    continue
                chosen.append((str(spec["name"]), spec.get("alias"), dict(spec)))
        for member_name in excludes:
            if _find(cube, member_name) is None:
                self.issue(
                    entry,
                    view.name,
                    f"'excludes' names unknown member '{cube.name}.{member_name}'."
                    + did_you_mean(member_name, [m.name for m in cube.members()]),
                )
        for member_name, alias, spec in chosen:
            if member_name in excludes:
                continue
            target = _find(cube, member_name)
            if target is None:
                self.issue(
                    entry,
                    view.name,
                    f"'includes' names unknown member '{cube.name}.{member_name}'."
                    + did_you_mean(member_name, [m.name for m in cube.members()]),
                )
                continue
            exposed = alias or f"{prefix}{member_name}"
            if exposed in view.members:
                self.issue(
                    entry, view.name, f"view member '{exposed}' is included twice; use 'prefix' or an alias"
                )
                continue
            view.members[exposed] = ViewMember(
                view=view.name,
                name=exposed,
                target=target,
                join_path=path,
                title=spec.get("title") or target.title,
                description=spec.get("description", target.description),
            )

    def check_ambiguous_paths(self, graph: nx.Graph, views: dict[str, View]) -> None:
        """Cubes joined by several equally short paths: a warning here, an error for a query that needs
        the pair without a view's join_path to choose (so a Cube model with a join cycle still loads)."""
        pinned = {frozenset((p[0], p[-1])) for v in views.values() for p in v.join_paths}
        pinned |= {frozenset((a, b)) for v in views.values() for p in v.join_paths for a in p for b in p}
        for component in nx.connected_components(graph):
            nodes = sorted(component)
            for i, a in enumerate(nodes):
                for b in nodes[i + 1 :]:
                    if frozenset((a, b)) in pinned:
                        continue
                    paths = []
                    for path in nx.all_shortest_paths(graph, a, b):
                        paths.append(path)
                        if len(paths) > 1:
                            break
                    if len(paths) > 1:
                        shown = " and ".join(" → ".join(p) for p in paths)
                        self.issue(
                            self.cubes[a].location,
                            a,
                            f"ambiguous join paths from '{a}' to '{b}': {shown}; "
                            "define a view with a join_path to choose one",
                            severity="warning",
                        )

    def finish(self, version: str) -> SemanticModel | None:
        self.resolve_all()
        self.resolve_masks()
        graph = self.build_graph()
        self.check_primary_keys(graph)
        views = self.build_views(graph)
        self.check_ambiguous_paths(graph, views)
        self.read_policies(views)
        return SemanticModel(
            cubes=self.cubes, views=views, graph=graph, dialect=self.dialect, version=version
        )

    # -- pass 4: access policies and masks ---------------------------------------------------------

    def resolve_masks(self) -> None:
        for member, raw in self.raw_masks:
            if isinstance(raw, dict):
                cube = self.cubes[member.cube]
                if isinstance(member, Measure) and "{" in str(raw["sql"]):
                    self.issue(member.location, member.path, "a measure's mask SQL cannot reference members")
                    continue
                member.mask = self.resolve_sql(str(raw["sql"]), cube, None, member.location)
            else:
                member.mask = _mask_literal(raw)

    def read_policies(self, views: dict[str, View]) -> None:
        for owner_name, raw in self.raw_policies:
            owner = self.cubes.get(owner_name) or views.get(owner_name)
            if owner is None:
                continue
            if isinstance(owner, Cube):
                kinds = {m.name: _KIND[type(m)] for m in owner.members()}

                def row_filter_check(name: str, cube: Cube = owner) -> str | None:
                    others = (cube.dimensions[name].cubes & self.cubes.keys()) - {cube.name}
                    if others:
                        return (
                            f"'{name}' reads other cubes ({', '.join(sorted(others))}); "
                            "a cube's row filter must use its own columns (put the policy on a view instead)"
                        )
                    return None
            else:
                kinds = {m.name: _KIND[type(m.target)] for m in owner.members.values()}
                row_filter_check = lambda _name: None  # noqa: E731

            entries = raw["access_policy"]

            def report(
                line: int | None, message: str, name: str = owner_name, where: LocatedDict = raw
            ) -> None:
                self.issues.append(ModelIssue(where.file, line, f"{name}.access_policy", message))

            owner.access_policy = read_policies(
                entries,
                owner=owner_name,
                members=kinds,
                row_filter_check=row_filter_check,
                file=raw.file,
                line_of=lambda entry, fallback=raw: (
                    entry.line if isinstance(entry, LocatedDict) else fallback.line
                ),
                report=report,
            )


_KIND = {Dimension: "dimension", Measure: "measure", Segment: "segment"}


def _mask_literal(value: Any) -> exp.Expression:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _find(cube: Cube, name: str) -> Member | None:
    return cube.dimensions.get(name) or cube.measures.get(name) or cube.segments.get(name)


def _tables_of(tree: exp.Expression) -> frozenset[str]:
    """Qualifiers of the columns in `tree`; callers keep the cube names (a scalar subquery's own
    table aliases are not cubes the query must join)."""
    return frozenset(c.table for c in tree.find_all(exp.Column) if c.table)


def _titleize(name: str) -> str:
    return name.replace("_", " ").strip().title()


def _common(cube: str, raw: LocatedDict) -> dict[str, Any]:
    sql = raw.get("sql")
    return dict(
        cube=cube,
        name=raw["name"],
        title=raw.get("title") or _titleize(raw["name"]),
        description=raw.get("description"),
        public=raw.get("public", raw.get("shown", True)),
        meta=dict(raw.get("meta") or {}),
        location=Location(raw.file, raw.line),
        sql_text=None if sql is None else str(sql),
    )


def _dimension(cube: str, raw: LocatedDict) -> Dimension:
    fmt = raw.get("format")
    return Dimension(
        **_common(cube, raw),
        type=raw["type"],
        primary_key=bool(raw.get("primary_key")),
        format=fmt if isinstance(fmt, str) else None,
    )


def _measure(cube: str, raw: LocatedDict) -> Measure:
    common = _common(cube, raw)
    common["meta"]["__filters__"] = [str(f["sql"]) for f in raw.get("filters") or []]
    window = raw.get("rolling_window")
    rolling = None
    if window is not None:
        rolling = RollingWindow(
            trailing=_window_bound(window.get("trailing")),
            leading=_window_bound(window.get("leading")),
            offset=window.get("offset", "end"),
        )
    return Measure(**common, type=raw["type"], format=raw.get("format"), rolling_window=rolling)


def _window_bound(value: str | None) -> str | None:
    """Cube's spelling: 'unbounded', an interval such as '7 day', or None when not given."""
    return None if value is None else str(value)


def _segment(cube: str, raw: LocatedDict) -> Segment:
    return Segment(**_common(cube, raw))


def names(items: Iterable[Member]) -> list[str]:
    return [m.name for m in items]
