"""The grounding index: every member the caller may see, its phrases, and low-cardinality values.

Enumerated only through `semantic.catalog.owners`/`members`, so a member hidden from the caller can never
be matched, suggested or leak through "did you mean". Distinct values are read through the caller's own
`execute` (row-level policies apply to them too). Built once per (model version, visible members,
context key) and cached; a new model version builds a new index, and so does the passing of
`REFRESH_S`, so values added to the data are found.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from headless_bi.nlq.embeddings import get_embedder
from headless_bi.nlq.text import humanize, norm
from headless_bi.semantic.catalog import Visible, members, owners
from headless_bi.semantic.model import Cube, Dimension, Measure, Member, SemanticModel

MAX_VALUES = 200  # a string dimension with more distinct values is not indexed by value
SKIP_VALUE_NAMES = re.compile(r"(^|_)(id|key|email|phone|address|comment|sku|timezone)$")
Execute = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Entry:
    """One visible member (or a cube itself: kind 'entity') and the phrases that name it."""

    path: str
    owner: str
    is_view: bool
    kind: str  # measure | dimension | segment | entity
    type: str  # dimension type, measure type, '' for segments and entities
    title: str
    description: str
    phrases: tuple[str, ...]
    target: Member | None  # the cube member (shared by a cube member and the view members aliasing it)
    cube: str  # the target's cube (for an entity: the cube itself)

    @property
    def key(self) -> int:
        """Identity of what is measured/grouped: a cube member and its view aliases share it."""
        return id(self.target) if self.target is not None else hash(self.path)


@dataclass(frozen=True)
class ValueEntry:
    entry: Entry  # the string dimension
    value: str  # as stored, used in the filter


@dataclass
class Index:
    entries: list[Entry]
    exact: dict[str, list[Entry]]
    values: dict[str, list[ValueEntry]]
    phrases: list[str]  # unique phrases of entries, aligned with `vectors`
    vectors: np.ndarray | None
    value_phrases: list[str]
    joins: dict[str, list[str]]  # cube → cubes it reaches many_to_one (for default time dimensions)
    by_owner: dict[str, list[Entry]] = field(default_factory=dict)
    many_values: frozenset[int] = frozenset()  # keys of string dimensions with over MAX_VALUES values
    default_time: dict[str, str] = field(default_factory=dict)  # cube → its measures' time dimension
    sources: dict[str, str] = field(default_factory=dict)  # cube → its FROM (role-playing cubes share one)
    roots: dict[str, str] = field(default_factory=dict)  # view → the cube its rows are counted from
    aliases: dict[str, frozenset[str]] = field(
        default_factory=dict
    )  # word → one-word names of the same member

    def entity(self, cube: str) -> Entry | None:
        return next((e for e in self.entries if e.kind == "entity" and e.cube == cube), None)

    def names(self, cube: str, text: str) -> bool:
        """Does `text` name the cube ('orders', 'customers')?"""
        entity = self.entity(cube)
        padded = f" {norm(text)} "
        return entity is not None and any(f" {p} " in padded for p in entity.phrases)


def _phrases(v: Visible, extra: list[str]) -> tuple[str, ...]:
    found = [humanize(v.name), v.title, *v.member.synonyms, *extra, *_gist(v.description)]
    return tuple(dict.fromkeys(p for p in (norm(x) for x in found) if p))


def _gist(description: str | None) -> list[str]:
    """A description that opens with a short phrase ('Revenue per order. Defined here...') names
    the member in the words people use: that phrase is matched like a synonym."""
    if not description:
        return []
    head = re.split(r"[.;:(]|\s[-\u2013]\s", description.strip(), maxsplit=1)[0].strip()
    return [head] if 2 <= len(head.split()) <= 5 else []


def _entries(model: SemanticModel) -> list[Entry]:
    out: list[Entry] = []
    for owner in owners(model):
        is_view = not isinstance(owner, Cube)
        if not is_view:
            words = [humanize(owner.name), owner.title, *_synonyms(owner.meta)]
            out.append(
                Entry(owner.name, owner.name, False, "entity", "", owner.title, owner.description or "",
                      tuple(dict.fromkeys(norm(w) for w in words if norm(w))), None, owner.name)
            )  # fmt: skip
        for v in members(model, owner):
            member = v.member
            kind = v.kind
            mtype = member.type if isinstance(member, Dimension | Measure) else ""
            extra = []
            if is_view and v.title != member.title:
                extra.append(member.title)  # a view alias keeps the cube member's wording too
            out.append(
                Entry(v.path, owner.name, is_view, kind, mtype, v.title, v.description or "",
                      _phrases(v, extra), member, member.cube)
            )  # fmt: skip
    return out


def _synonyms(meta: dict[str, Any]) -> list[str]:
    value = meta.get("synonyms") or []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _values(
    entries: list[Entry], execute: Execute | None
) -> tuple[dict[str, list[ValueEntry]], frozenset[int]]:
    """Distinct values of low-cardinality string dimensions, one probe per underlying member; and the
    members with too many values to list (names of customers: not unique, so listed with their key)."""
    out: dict[str, list[ValueEntry]] = defaultdict(list)
    if execute is None:
        return out, frozenset()
    probed: dict[int, list[str] | None] = {}
    for e in entries:
        if e.kind != "dimension" or e.type != "string" or SKIP_VALUE_NAMES.search(e.path.split(".")[-1]):
            continue
        if e.key not in probed:
            try:
                rows = execute({"dimensions": [e.path], "limit": MAX_VALUES + 1}).data
            except Exception:
                rows = []
            vals = [r.get(e.path) for r in rows]
            probed[e.key] = None if len(vals) > MAX_VALUES else [str(v) for v in vals if v not in (None, "")]
        for value in probed[e.key] or []:
            for phrase in _value_phrases(value):
                out[phrase].append(ValueEntry(e, value))
        for code, meaning in legend(e.description):
            if code in (probed[e.key] or ()):
                out[norm(meaning)].append(ValueEntry(e, code))  # "open orders": status 'O'
    many = {k for k, v in probed.items() if v is None}
    return dict(out), frozenset(k for k in many if not _unique(entries, k, execute))


def _unique(entries: list[Entry], key: int, execute: Execute) -> bool:
    """Does each value of a many-valued label name one row of its cube? Asked once, at build time:
    any value with two rows means listing by it must also group by the cube's key."""
    label = next(e for e in entries if e.key == key)
    count = next(
        (e for e in entries if e.kind == "measure" and e.type == "count" and e.cube == label.cube
         and e.owner == label.cube),
        None,
    )  # fmt: skip
    if count is None or label.owner != label.cube:
        return False
    try:
        rows = execute(
            {
                "dimensions": [label.path],
                "measures": [count.path],
                "limit": 1,
                "filters": [{"member": count.path, "operator": "gt", "values": ["1"]}],
            }
        ).data
    except Exception:
        return False
    return not rows


_LEGEND = re.compile(
    r"(?:^|[\s(,;:])(?P<code>[A-Za-z0-9][\w-]{0,15})\s*=\s*(?P<meaning>[A-Za-z][a-z ]{1,30}?)"
    r"(?=\s*(?:[,;.)(]|$|\s+[A-Za-z0-9][\w-]{0,15}\s*=))"
)


def legend(description: str) -> list[tuple[str, str]]:
    """Codes a description explains ('O = open, F = fulfilled'): people ask by the meaning."""
    found = [(m.group("code"), m.group("meaning").strip()) for m in _LEGEND.finditer(description or "")]
    return [(code, meaning) for code, meaning in found if meaning.lower() not in ("none", "other", "unknown")]


def _value_phrases(value: str) -> list[str]:
    phrase = norm(value)
    if len(phrase) < 2 or phrase.isdigit():
        return []
    found = [phrase]
    stripped = re.sub(r"^\d+\s+", "", phrase)  # TPC-H's "1-URGENT" is asked about as "urgent"
    if stripped != phrase and len(stripped) >= 3:
        found.append(stripped)
    words = phrase.split()
    if len(words) == 2:
        found.append(f"{words[1]} {words[0]}")  # "return pending" is asked as "pending return"
    return found


def _joins(model: SemanticModel, entries: list[Entry]) -> dict[str, list[str]]:
    """For each cube behind a visible member: the cubes it reaches by many_to_one joins, nearest first."""
    out: dict[str, list[str]] = {}
    for cube_name in {e.cube for e in entries}:
        seen, frontier = [cube_name], [cube_name]
        while frontier:
            nxt = []
            for name in frontier:
                cube = model.cubes.get(name)
                for join in cube.joins.values() if cube else ():
                    if join.seen_from(name) == "many_to_one" and join.target not in seen:
                        seen.append(join.target)
                        nxt.append(join.target)
            frontier = nxt
        out[cube_name] = seen
    return out


def build_index(model: SemanticModel, execute: Execute | None = None) -> Index:
    entries = _entries(model)
    exact: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        for p in e.phrases:
            exact[p].append(e)
    phrases = list(exact)
    embedder = get_embedder()
    vectors = embedder.encode(phrases) if embedder is not None and phrases else None
    values, many = _values(entries, execute)
    by_owner: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_owner[e.owner].append(e)
    return Index(entries, dict(exact), values, phrases, vectors, list(values), _joins(model, entries),
                 dict(by_owner), many, _default_times(model),
                 {name: cube.source.sql() for name, cube in model.cubes.items()},
                 _roots(model), _aliases(entries))  # fmt: skip


def _aliases(entries: list[Entry]) -> dict[str, frozenset[str]]:
    """One-word names of one member are interchangeable inside longer phrases: visits has the
    synonym 'footfall', so 'average daily footfall' can be 'average daily visit'."""
    out: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        if e.kind == "entity":
            continue
        single = {p for p in e.phrases if " " not in p}
        for word in single:
            out[word] |= single - {word}
    return {w: frozenset(a) for w, a in out.items() if a}


def _roots(model: SemanticModel) -> dict[str, str]:
    return {name: view.join_paths[0][0] for name, view in model.views.items() if view.join_paths}


def _default_times(model: SemanticModel) -> dict[str, str]:
    """`meta.default_time_dimension` of each cube (MetricFlow's agg_time_dimension): the time a
    question means for the cube's measures, e.g. line items are sold on their order's date."""
    out = {}
    for cube in model.cubes.values():
        name = cube.meta.get("default_time_dimension") if isinstance(cube.meta, dict) else None
        if isinstance(name, str) and name:
            out[cube.name] = name if "." in name else f"{cube.name}.{name}"
    return out


def fingerprint(model: SemanticModel) -> str:
    """The visible members: two governed views of one model version differ here."""
    digest = hashlib.sha1(usedforsecurity=False)
    for owner in owners(model):
        for v in members(model, owner):
            digest.update(v.path.encode() + b"\0")
    return digest.hexdigest()


_CACHE: OrderedDict[tuple[Any, ...], Index] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_BUILD_LOCKS: dict[tuple[Any, ...], threading.Lock] = {}


REFRESH_S = 900  # values in the data change: an index is rebuilt after this long


def get_index(model: SemanticModel, execute: Execute | None, context_key: Hashable = None) -> Index:
    """The cached index for this model version, visible members and context (the caller's warehouse
    and policy key: values are read through row filters), rebuilt every REFRESH_S for new values."""
    key = (model.version, fingerprint(model), context_key, execute is None, int(time.time() // REFRESH_S))
    with _CACHE_LOCK:
        index = _CACHE.get(key)
        if index is not None:
            _CACHE.move_to_end(key)
            return index
        lock = _BUILD_LOCKS.setdefault(key, threading.Lock())
    with lock:  # one build per key even when many requests arrive at once
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
        index = build_index(model, execute)
        with _CACHE_LOCK:
            _CACHE[key] = index
            _BUILD_LOCKS.pop(key, None)
            while len(_CACHE) > 32:
                _CACHE.popitem(last=False)
    return index
