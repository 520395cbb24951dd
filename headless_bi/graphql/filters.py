"""Cube's GraphQL `where` / `orderBy` arguments → the `filters` / `order` of Cube's query JSON.

Arguments arrive as raw values (dicts in the order written, enums as names), the way Cube reads them
from the AST, so the order of sort keys survives. Operator mapping follows Cube's
`whereArgToQueryFilters`: `in` → `equals`, `notIn` → `notEquals`, `set: true|false` → `set|notSet`.

One deliberate difference: in Cube an object with several keys inside `OR: [...]` is spread into the
OR (so `OR: [{a: .., b: ..}]` means a OR b); here every object means the AND of its keys, everywhere,
which is what the GraphQL shape says. AND groups outside any OR are flattened into top-level filters,
so measure filters (HAVING) and dimension filters (WHERE) can be ANDed freely.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

_RENAMED = {"in": "equals", "notIn": "notEquals"}


def where_filters(where: Any, owner: str | None = None) -> list[dict[str, Any]]:
    """A root `where` (owner None: keys are cubes) or a cube's `where` → filters, implicitly ANDed."""
    if not isinstance(where, dict):
        return []
    out: list[dict[str, Any]] = []
    for key, value in where.items():
        if value is None:
            continue  # an explicit null means "no filter", as clients often send from empty variables
        if key == "AND":
            for item in _items(value):
                out.extend(where_filters(item, owner))
        elif key == "OR":
            groups = [g for g in (_all(where_filters(item, owner)) for item in _items(value)) if g]
            if len(groups) == 1:
                out.append(groups[0])
            elif groups:
                out.append({"or": groups})
        elif owner is None:
            out.extend(where_filters(value, key))
        else:
            out.extend(member_filters(f"{owner}.{key}", value))
    return out


def member_filters(path: str, operators: Any) -> list[dict[str, Any]]:
    """`{equals: .., gt: ..}` on one member → one Cube filter per operator."""
    out: list[dict[str, Any]] = []
    for operator, value in (operators or {}).items():
        if value is None:
            continue
        if operator == "set":
            out.append({"member": path, "operator": "set" if plain(value) else "notSet"})
            continue
        values = [plain(v) for v in _items(value)]
        out.append({"member": path, "operator": _RENAMED.get(operator, operator), "values": values})
    return out


def order_pairs(order: Any, owner: str | None = None) -> list[list[str]]:
    """A root `orderBy` ({cube: {member: dir}}) or a cube's ({member: dir}) → [[member, dir], ...]."""
    if not isinstance(order, dict):
        return []
    if owner is None:
        return [pair for cube, members in order.items() for pair in order_pairs(members, cube)]
    return [[f"{owner}.{member}", str(plain(d))] for member, d in order.items() if d is not None]


def plain(value: Any) -> Any:
    """Enum members (from variables) → their value; everything else as given."""
    return value.value if isinstance(value, Enum) else value


def _items(value: Any) -> list[Any]:
    """A list argument; GraphQL lets a single item stand for a one-element list."""
    return value if isinstance(value, list) else [value]


def _all(filters: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not filters:
        return None
    return filters[0] if len(filters) == 1 else {"and": filters}
