"""The `meta` catalog: what a BI tool or an LLM agent needs to discover the model, in Cube's terms.

Names are full (`cube.member`, what queries use); titles are "<cube title> <member title>" with
the member title as `shortTitle`, as in Cube's /meta. Only public cubes, views and members appear.
"""

from __future__ import annotations

import networkx as nx

from headless_bi.graphql.types import CubeMeta, MemberKind, MemberMeta, Meta
from headless_bi.semantic import catalog as visibility
from headless_bi.semantic.model import Cube, Dimension, Measure, SemanticModel, View
from headless_bi.semantic.time import GRANULARITIES


def build_meta(model: SemanticModel) -> Meta:
    components = _components(model)
    cubes = [
        CubeMeta(
            name=owner.name,
            type="cube" if isinstance(owner, Cube) else "view",
            title=owner.title,
            description=owner.description,
            synonyms=_synonyms(owner.meta),
            connectedComponent=components.get(owner.name) if isinstance(owner, Cube) else None,
            members=[_member(owner, v) for v in visibility.members(model, owner)],
        )
        for owner in visibility.owners(model)
    ]
    return Meta(version=model.version, cubes=cubes)


def _member(owner: Cube | View, v: visibility.Visible) -> MemberMeta:
    member = v.member
    is_dim = isinstance(member, Dimension)
    return MemberMeta(
        name=v.path,
        kind=MemberKind(v.kind),
        type=member.type if is_dim else ("number" if isinstance(member, Measure) else None),
        aggType=member.type if isinstance(member, Measure) else None,
        title=f"{owner.title} {v.title}",
        shortTitle=v.title,
        description=v.description,
        format=getattr(member, "format", None),
        synonyms=member.synonyms,
        primaryKey=is_dim and member.primary_key,
        granularities=list(GRANULARITIES) if is_dim and member.type == "time" else [],
    )


def _synonyms(meta: object) -> list[str]:
    value = meta.get("synonyms") if isinstance(meta, dict) else None
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _components(model: SemanticModel) -> dict[str, int]:
    """Cube name → number of its join-graph component (1-based, ordered by the smallest name)."""
    groups = sorted((sorted(c) for c in nx.connected_components(model.graph)), key=lambda g: g[0])
    return {name: i for i, group in enumerate(groups, 1) for name in group}
