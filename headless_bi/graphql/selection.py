"""The selection set of one `cube` field → ONE Cube query JSON, plus what reshaping needs.

Mirrors Cube's `getJsonQuery`: selected measures and dimensions become `measures` / `dimensions`;
under a time dimension, `value` is the plain dimension and each granularity one `timeDimensions`
entry (so one field can ask for `day` and `month` at once); `where` / `orderBy` of the root and of
each cube become `filters` / `order`. Fragments and `@skip` / `@include` are honoured.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from strawberry.types.nodes import SelectedField, Selection

from headless_bi.graphql.filters import order_pairs, plain, where_filters
from headless_bi.graphql.generic import given
from headless_bi.graphql.typed_schema import MemberField, TypedModel
from headless_bi.graphql.types import GRANULARITY_FIELDS

ROOT_OPTIONS = ("limit", "offset", "timezone", "renewQuery", "ungrouped")


@dataclass
class TimePick:
    """What is selected under one time dimension (directly or under `zoned`)."""

    plain: bool = False
    granularities: list[str] = field(default_factory=list)


@dataclass
class Plan:
    query: dict[str, Any]
    # owner name → member field name → the member, for the owners and members selected
    owners: dict[str, dict[str, MemberField]]
    times: dict[str, TimePick]  # by member path


def plan_query(roots: Iterable[SelectedField], typed: TypedModel, options: dict[str, Any]) -> Plan:
    """`roots`: the `cube` field node(s); `options`: its coerced scalar arguments (limit, ...)."""
    roots = list(roots)
    args = roots[0].arguments if roots else {}
    measures: dict[str, None] = {}
    dimensions: dict[str, None] = {}
    times: dict[str, TimePick] = {}
    owners: dict[str, dict[str, MemberField]] = {}
    filters: list[dict[str, Any]] = []
    order: list[list[str]] = order_pairs(args.get("orderBy"))
    segments: dict[str, None] = {}
    for cube_node in fields(s for root in roots for s in root.selections):
        owner = typed.owners.get(cube_node.name)
        if owner is None:
            continue  # __typename
        picked = owners.setdefault(owner.name, {})
        filters.extend(where_filters(cube_node.arguments.get("where"), owner.name))
        order.extend(order_pairs(cube_node.arguments.get("orderBy"), owner.name))
        for segment in cube_node.arguments.get("segments") or []:
            segments[f"{owner.name}.{plain(segment)}"] = None
        for member_node in fields(cube_node.selections):
            member = owner.members.get(member_node.name)
            if member is None:
                continue
            picked[member_node.name] = member
            if member.kind == "measure":
                measures[member.path] = None
            elif member.type != "time":
                dimensions[member.path] = None
            else:
                pick = times.setdefault(member.path, TimePick())
                _pick_time(member_node.selections, pick)
                if pick.plain:
                    dimensions[member.path] = None
    filters.extend(where_filters(args.get("where")))
    query: dict[str, Any] = {}
    if measures:
        query["measures"] = list(measures)
    if dimensions:
        query["dimensions"] = list(dimensions)
    time_dims = [{"dimension": p, "granularity": g} for p, pick in times.items() for g in pick.granularities]
    filters = _date_ranges_to_time_dimensions(filters, time_dims)
    if time_dims:
        query["timeDimensions"] = time_dims
    if filters:
        query["filters"] = filters
    if segments:
        query["segments"] = list(segments)
    if order:
        query["order"] = order
    for key in ROOT_OPTIONS:
        if given(options.get(key)):
            query[key] = options[key]
    return Plan(query, owners, times)


def _date_ranges_to_time_dimensions(
    filters: list[dict[str, Any]], time_dims: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A top-level `inDateRange` on a bucketed time becomes its `dateRange`, as Cube's GraphQL does:
    the same rows, and a rolling window then takes its buckets (and history) from the range."""
    kept = []
    for item in filters:
        targets = [td for td in time_dims if td["dimension"] == item.get("member") and "dateRange" not in td]
        if item.get("operator") == "inDateRange" and targets:
            for td in targets:
                td["dateRange"] = item.get("values")
        else:
            kept.append(item)
    return kept


def _pick_time(selections: list[Selection], pick: TimePick) -> None:
    for node in fields(selections):
        if node.name == "value":
            pick.plain = True
        elif node.name in GRANULARITY_FIELDS:
            if node.name not in pick.granularities:
                pick.granularities.append(node.name)
        elif node.name == "zoned":
            _pick_time(node.selections, pick)


def fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    """Selected fields with fragments expanded and `@skip` / `@include` applied; no `__typename`."""
    for node in selections:
        if not _included(node.directives):
            continue
        if isinstance(node, SelectedField):
            if not node.name.startswith("__"):
                yield node
        else:
            yield from fields(node.selections)


def _included(directives: dict[str, dict[str, Any]]) -> bool:
    if "skip" in directives and directives["skip"].get("if") is True:
        return False
    return not ("include" in directives and directives["include"].get("if") is False)
