"""Where a question's members are read from: one cube, one view, or cubes joined.

Every concept has candidate members on several owners (a cube member and the view members that alias
it); `place` lists the combinations worth trying, best first, and the matcher keeps the first that the
query layer accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headless_bi.nlq.index import Entry, Index

if TYPE_CHECKING:
    from headless_bi.nlq.matcher import Concept


def equivalents(index: Index, cands: list[tuple[Entry, float]]) -> list[tuple[Entry, float]]:
    """Each candidate plus the view members that alias the same cube member."""
    out = list(cands)
    keys = {e.key: s for e, s in cands if e.target is not None}
    for e in index.entries:
        if e.target is not None and e.key in keys and all(e.path != x.path for x, _ in out):
            out.append((e, keys[e.key]))
    return out


def place(index: Index, concepts: list[Concept]) -> list[tuple[float, list[Entry]]]:
    """Options (score, one entry per concept), best first: one cube, one view, or cubes joined."""
    expanded = [equivalents(index, c.cands) for c in concepts]
    options: list[tuple[float, list[Entry]]] = []
    cube_pick: list[tuple[Entry, float]] | None = []
    for cands in expanded:
        own = [(e, s) for e, s in cands if not e.is_view]
        if not own:
            cube_pick = None
            break
        cube_pick.append(max(own, key=lambda x: x[1]))  # type: ignore[union-attr]
    if cube_pick is not None:
        cube_pick = _near_anchor(index, concepts, expanded, cube_pick)
        total = sum(s for _, s in cube_pick)
        spread = len({e.owner for e, _ in cube_pick})
        options.append((total - 0.03 * (spread - 1), [e for e, _ in cube_pick]))
    views = {e.owner for cands in expanded for e, _ in cands if e.is_view}
    for view in sorted(views):
        pick = []
        for cands in expanded:
            own = [(e, s) for e, s in cands if e.owner == view]
            if not own:
                break
            pick.append(max(own, key=lambda x: x[1]))
        else:
            # a view is the curated way in, but it counts rows of its root only: a measure of another
            # cube there ("customers" in a view of orders) is a different number than on its cube
            exact = all(e.cube == index.roots.get(view) for (e, _), c in zip(pick, concepts, strict=True)
                        if c.role in ("measure", "measure_filter"))  # fmt: skip
            options.append((sum(s for _, s in pick) + (0.02 if exact else -0.01), [e for e, _ in pick]))
    return sorted(options, key=lambda o: -o[0])


def _near_anchor(
    index: Index,
    concepts: list[Concept],
    expanded: list[list[tuple[Entry, float]]],
    pick: list[tuple[Entry, float]],
) -> list[tuple[Entry, float]]:
    """Between near-equal candidates ('country' of customers or of stores), take the one on the
    measure's cube or the nearest cube it reaches: 'stores in each country' is the stores' country."""
    anchors = [
        e.cube for (e, _), c in zip(pick, concepts, strict=True) if c.role in ("measure", "measure_filter")
    ]
    if not anchors:
        return pick
    reach = index.joins.get(anchors[0], [anchors[0]])
    out = []
    for (best, score), cands, c in zip(pick, expanded, concepts, strict=True):
        if c.role in ("measure", "measure_filter"):
            out.append((best, score))
            continue
        close = [(e, s) for e, s in cands if not e.is_view and s >= score - 0.015]
        close += [(e, score) for e in _role_playing(index, best, reach) if all(e is not x for x, _ in close)]
        ranked = sorted(close, key=lambda x: (reach.index(x[0].cube) if x[0].cube in reach else 99, -x[1]))
        out.append(ranked[0] if ranked else (best, score))
    return out


def _role_playing(index: Index, chosen: Entry, reach: list[str]) -> list[Entry]:
    """The same member on another cube over the same table that the measure's cube does reach:
    'suppliers per nation' is the suppliers' nation (supplier_nation), not the customers'."""
    if chosen.cube in reach or chosen.target is None:
        return []
    table = index.sources.get(chosen.cube)
    name = chosen.target.name
    return [
        e for e in index.entries
        if not e.is_view and e.cube in reach and e.target is not None and e.target.name == name
        and e.kind == chosen.kind and table is not None and index.sources.get(e.cube) == table
    ]  # fmt: skip
