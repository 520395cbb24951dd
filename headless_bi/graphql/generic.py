"""`QueryInput` (the typed mirror of Cube's query JSON) → the query dict `run_query` takes, and back.

Only fields the client set are copied, so the compiler's defaults and error messages apply exactly
as for the REST-style JSON.
"""

from __future__ import annotations

from typing import Any

from strawberry import UNSET

from headless_bi.errors import QueryError
from headless_bi.graphql.types import Column, FilterInput, QueryInput
from headless_bi.semantic.compiler import MemberAnnotation

_LISTS = ("measures", "dimensions", "segments")
_SCALARS = ("limit", "offset", "timezone", "total", "ungrouped", "renewQuery")


def given(value: Any) -> bool:
    """Set by the client: neither omitted (UNSET) nor null."""
    return value is not None and value is not UNSET


def to_query_dict(query: QueryInput) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _LISTS:
        if given(getattr(query, key)):
            out[key] = list(getattr(query, key))
    if given(query.timeDimensions):
        out["timeDimensions"] = [
            {
                "dimension": td.dimension,
                **({"granularity": td.granularity} if given(td.granularity) else {}),
                **({"dateRange": list(td.dateRange)} if given(td.dateRange) else {}),
            }
            for td in query.timeDimensions
        ]
    if given(query.filters):
        out["filters"] = [_filter(f) for f in query.filters]
    if given(query.order):
        out["order"] = [[o.id, "desc" if o.desc else "asc"] for o in query.order]
    for key in _SCALARS:
        if given(getattr(query, key)):
            out[key] = getattr(query, key)
    return out


def _filter(item: FilterInput) -> dict[str, Any]:
    groups = {k: v for k, v in (("and", item.and_), ("or", item.or_)) if given(v)}
    leaf = {
        k: v
        for k, v in (
            ("member", item.member),
            ("dimension", item.dimension),
            ("operator", item.operator),
            ("values", item.values),
        )
        if given(v)
    }
    if groups:
        if len(groups) > 1 or leaf:
            raise QueryError(
                "filters: a filter is either member/operator/values or exactly one of 'and' / 'or', "
                f"got {sorted(groups) + sorted(leaf)}"
            )
        kind, children = next(iter(groups.items()))
        return {kind: [_filter(child) for child in children]}
    if "values" in leaf:
        leaf["values"] = list(leaf["values"])
    return leaf


def columns(annotations: tuple[MemberAnnotation, ...]) -> list[Column]:
    return [
        Column(
            key=a.key,
            kind=a.kind,
            title=a.title,
            shortTitle=a.short_title,
            type=a.type,
            format=a.format,
            granularity=a.granularity,
        )
        for a in annotations
    ]
