"""Which cubes, views and members a caller may list: the typed schema, `meta` and `ask` read this.

The rule is the model's (`SemanticModel.resolve` refuses hidden members for every query, `load` and
`live` included): a view member is visible when the view is public and the member it aliases is
public; the aliased member's cube may be private (a view is how a private cube is exposed). A model
governed for a user also leaves out what the user's access policies deny (`model.denied`); an owner
with nothing left to show is left out entirely.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
    """Public cubes, then public views, in model order (without those the user may see nothing of)."""
    for owner in (*model.cubes.values(), *model.views.values()):
        if owner.public and (not model.denied or members(model, owner)):
            yield owner


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
    if model.denied:
        found = [v for v in found if v.path not in model.denied]
    order = {"dimension": 0, "measure": 1, "segment": 2}
    return sorted(found, key=lambda v: order[v.kind])
