"""Which cubes, views and members the API shows: the one place `public: false` is applied.

A hidden member must be absent from the typed schema, the catalog and `load` alike, otherwise the
name could be probed through whichever door forgot the rule. A view member is visible when the view
is public and the member it aliases is public; the aliased member's cube may be private (a view is
how a private cube is exposed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from headless_bi.errors import HeadlessBIError, UnknownMemberError
from headless_bi.semantic.model import Cube, Dimension, Measure, Member, SemanticModel, View

_KIND = {Dimension: "dimension", Measure: "measure"}


@dataclass(frozen=True)
class Visible:
    """A member as exposed under `owner` (a cube or a view)."""

    owner: str
    name: str
    member: Member  # the cube member (for a view member: its target)
    title: str
    description: str | None

    @property
    def path(self) -> str:
        return f"{self.owner}.{self.name}"

    @property
    def kind(self) -> str:
        return _KIND.get(type(self.member), "segment")


def owners(model: SemanticModel) -> Iterator[Cube | View]:
    """Public cubes, then public views, in model order."""
    yield from (c for c in model.cubes.values() if c.public)
    yield from (v for v in model.views.values() if v.public)


def members(model: SemanticModel, owner: Cube | View) -> list[Visible]:
    """The public members of a cube or view: dimensions, then measures, then segments."""
    if isinstance(owner, Cube):
        found = [Visible(owner.name, m.name, m, m.title, m.description) for m in owner.members() if m.public]
    else:
        found = [
            Visible(owner.name, vm.name, vm.target, vm.title, vm.description)
            for vm in owner.members.values()
            if vm.target.public
        ]
    order = {"dimension": 0, "measure": 1, "segment": 2}
    return sorted(found, key=lambda v: order[v.kind])


def is_visible(model: SemanticModel, name: str) -> bool:
    owner_name, _, member_name = name.partition(".")
    cube = model.cubes.get(owner_name)
    if cube is not None:
        member = cube.dimensions.get(member_name) or cube.measures.get(member_name)
        member = member or cube.segments.get(member_name)
        return cube.public and member is not None and member.public
    view = model.views.get(owner_name)
    if view is not None:
        alias = view.members.get(member_name)
        return view.public and alias is not None and alias.target.public
    return False


def check_query(model: SemanticModel, query: dict[str, Any]) -> None:
    """Reject a query naming a hidden member exactly as if the member did not exist."""
    for name, kind in _names(query):
        if isinstance(name, str) and not is_visible(model, name) and _exists(model, name):
            candidates = [
                v.path
                for owner in owners(model)
                for v in members(model, owner)
                if kind is None or v.kind == kind
            ]
            raise UnknownMemberError(name, candidates, kind=kind or "member")


def _exists(model: SemanticModel, name: str) -> bool:
    try:
        model.resolve(name)
    except HeadlessBIError:  # not a member at all: the compiler will say why
        return False
    return True


def _names(query: dict[str, Any]) -> Iterator[tuple[Any, str | None]]:
    for key, kind in (("measures", "measure"), ("dimensions", "dimension"), ("segments", "segment")):
        for name in query.get(key) or []:
            yield name, kind
    for item in query.get("timeDimensions") or []:
        if isinstance(item, dict):
            yield item.get("dimension"), "dimension"
    stack = list(query.get("filters") or [])
    while stack:
        item = stack.pop()
        if not isinstance(item, dict):
            continue
        stack.extend(item.get("and") or [])
        stack.extend(item.get("or") or [])
        yield item.get("member", item.get("dimension")), None
