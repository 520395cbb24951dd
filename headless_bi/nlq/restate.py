"""A semantic query read back in plain words, so the asker can check what was understood.

Built from the query itself (never from the question), with the members' titles: what the user sees
is what runs. "Revenue, by customer region, for 2024-07-01 to 2024-09-30".
"""

from __future__ import annotations

from typing import Any

OPERATOR_WORDS = {
    "equals": "is", "notEquals": "is not", "contains": "contains", "notContains": "does not contain",
    "startsWith": "starts with", "endsWith": "ends with", "gt": "over", "gte": "at least", "lt": "under",
    "lte": "at most", "set": "is set", "notSet": "is not set", "inDateRange": "in",
    "notInDateRange": "not in", "beforeDate": "before", "afterDate": "after",
}  # fmt: skip


def title_of(path: str, titles: dict[str, str]) -> str:
    return titles.get(path) or path.split(".")[-1].replace("_", " ").capitalize()


def _join(words: list[str]) -> str:
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _filter(f: dict[str, Any], titles: dict[str, str]) -> str:
    if "and" in f or "or" in f:
        key = "and" if "and" in f else "or"
        return "(" + f" {key} ".join(_filter(x, titles) for x in f[key]) + ")"
    values = [str(v) for v in f.get("values") or []]
    shown = (
        " or ".join(values)
        if f["operator"] in ("equals", "contains", "startsWith", "endsWith")
        else (" nor ".join(values) if f["operator"] in ("notEquals", "notContains") else " to ".join(values))
    )
    words = OPERATOR_WORDS.get(f["operator"], f["operator"])
    return f"{title_of(f['member'], titles).lower()} {words}" + (f" {shown}" if shown else "")


def restate(query: dict[str, Any], titles: dict[str, str], share: bool = False) -> str:
    """One line: measures, breakdowns, filters, ranking and period."""
    measures = [title_of(m, titles) for m in query.get("measures", [])]
    dims = [title_of(d, titles).lower() for d in query.get("dimensions", [])]
    period = None
    for td in query.get("timeDimensions", []):
        name = title_of(td["dimension"], titles).lower()
        if td.get("granularity"):
            dims.append(f"{name} ({td['granularity']})")
        if td.get("dateRange"):
            rng = td["dateRange"]
            period = f"{rng[0]} to {rng[1]}" if isinstance(rng, list) else str(rng)
            owners = {m.split(".", 1)[0] for m in query.get("measures", [])}
            if owners and td["dimension"].split(".", 1)[0] not in owners:
                period = f"{name} {period}"  # another cube's date: "revenue, for signup date 2026-..."
    head = _join(measures) if measures else "Rows"
    if share and measures:
        head = f"{head} (share of total)"
    parts = [head]
    if dims:
        parts.append("by " + _join(dims))
    filters = [_filter(f, titles) for f in query.get("filters", [])]
    filters += [title_of(s, titles).lower() for s in query.get("segments", [])]
    if filters:
        parts.append("where " + " and ".join(filters))
    order = query.get("order") or {}
    if isinstance(order, dict) and order:
        member, direction = next(iter(order.items()))
        prefix = (
            f"top {query['limit']}"
            if query.get("limit") and direction == "desc"
            else (f"bottom {query['limit']}" if query.get("limit") else "sorted")
        )
        parts.append(f"{prefix} by {title_of(member, titles).lower()}" + ("" if query.get("limit") else
                     f" {'descending' if direction == 'desc' else 'ascending'}"))  # fmt: skip
    elif query.get("limit"):
        parts.append(f"first {query['limit']}")
    if period:
        parts.append(f"for {period}")
    return ", ".join(parts)
