"""Question → `Interpretation`: the built-in, rule-and-index based proposer of a semantic query.

Steps: time expressions and cue words (top N, comparators, "by", "how many", negation) are found first;
the remaining words are matched against the index (`lexical.lookup`), the best non-overlapping phrases
are kept, each gets a role from its context, and the members are placed on one owner when possible
(one cube; else one view; else cubes joined), checked by the query layer before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from headless_bi.errors import HeadlessBIError
from headless_bi.nlq.conditions import as_condition, negates, rate_for
from headless_bi.nlq.cues import (
    COMPARATOR,
    COUNT,
    HAVE,
    NEGATION,
    NEGATION_FILLER,
    SHARE,
    Rank,
    consume,
    find_comparators,
    find_rank,
    find_sort,
    token_at,
)
from headless_bi.nlq.doubts import unapplied_cues
from headless_bi.nlq.index import Entry, Index
from headless_bi.nlq.lexical import GENERIC, Candidate, lookup
from headless_bi.nlq.placement import equivalents, place
from headless_bi.nlq.restate import restate
from headless_bi.nlq.text import STOPWORDS, humanize, norm, tokens, word
from headless_bi.nlq.timeparse import TimeSpec, parse_time
from headless_bi.semantic.model import Dimension, SemanticModel
from headless_bi.semantic.query import parse_query

# Verbs that read like a status value: "orders were placed on 1 Jan" is not status = placed.
AGGREGATE_WORDS = {
    "average": ("avg",), "avg": ("avg",), "mean": ("avg",), "total": ("sum",), "sum": ("sum",),
    "maximum": ("max",), "max": ("max",), "minimum": ("min",), "min": ("min",),
}  # fmt: skip
AMOUNT_WORDS = {"total", "value", "amount", "sum", "worth", "size", "average", "avg", "mean"}
QUALIFYING = {"from", "on", "for", "of", "in", "among", "excluding", "without", "except", "counting"}
CREATION_VERBS = {"placed", "made", "created", "submitted", "received"}
TIME_WORDS = {
    "on",
    "in",
    "between",
    "during",
    "since",
    "last",
    "this",
    "before",
    "after",
    "from",
    "yesterday",
    "today",
}
BREAKDOWN = {"by", "per", "each", "every", "across", "which", "what"}
DISTINCT = {"different", "distinct", "unique", "individual"}


@dataclass
class Concept:
    """One thing the question names, with the members it may mean (best first)."""

    role: str  # measure | dimension | time | value | segment | measure_filter
    cands: list[tuple[Entry, float]]
    phrase: str
    start: int = 0
    end: int = 0
    value: str | None = None
    negate: bool = False
    operator: str | None = None
    number: float | None = None
    listing: bool = False  # names a cube's rows ('top 5 customers'): grouped by its label (and key)
    alternative: bool = False  # a value after "or": "AIR or REG AIR" is one filter, not a comparison
    percent: bool = False  # the number was written as a percentage ('under 20%')
    per_item: bool = False  # the filter is on one item's value ('orders worth over 400k each')


@dataclass
class Interpretation:
    """The proposed query and everything needed to explain it; `query` is None when nothing matched."""

    question: str
    query: dict[str, Any] | None
    restatement: str
    confidence: float
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    compare_query: dict[str, Any] | None = None
    compare_label: str | None = None
    share: bool = False
    chart: str = "table"
    unmatched: list[str] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)


def interpret(question: str, model: SemanticModel, index: Index, *, today: date) -> Interpretation:
    lowered = question.lower()
    toks = tokens(question)
    used = [False] * len(toks)  # consumed by time expressions or cue phrases
    spec = parse_time(COMPARATOR.sub(lambda m: " " * len(m.group(0)), lowered), today)
    for a, b in spec.spans:
        consume(toks, used, a, b)
    comparators = find_comparators(lowered, toks, used)
    rank = find_rank(lowered, toks, used)
    sort_at = find_sort(lowered, toks, used)
    share = bool(SHARE.search(lowered))
    share_measure = _share_measure(index, toks) if share else None
    if share:
        for m in SHARE.finditer(lowered):
            consume(toks, used, m.start(), m.end())
    count_cues = [token_at(toks, m.start()) for m in COUNT.finditer(lowered)]
    grams = _grams(toks, used, index)
    proper = {i for i, (_, start, _) in enumerate(toks) if start > 0 and question[start].isupper()}
    found = [
        c for c in lookup(index, grams)
        if not (c.how in ("fuzzy", "embedding") and c.end - c.start == 1 and c.start in proper)
    ]  # a name ("France" for an analyst who has no France) is not a typo of a member  # fmt: skip
    if share_measure is not None:
        # "what share of orders are online": the model's own share measure, not a share computed here
        at = next(i for i, (t, _, _) in enumerate(toks) if t == "share")
        found = [c for c in found if not set(range(c.start, c.end)) & share_measure[1]]
        found.append(Candidate(at, at + 1, "share", 1.0, "exact", [share_measure[0]]))
        share = False
    chosen = select(_asked_rows(found, toks, index))
    dated = spec.period is not None
    concepts = _merge_values(_roles(chosen, toks, count_cues, comparators, index, lowered, dated), toks)
    concepts = [c for c in _aggregated(_qualifiers(concepts, index), toks, index) if c.cands]
    concepts = _flag_qualifiers(concepts, toks)
    concepts = _as_conditions(concepts, toks, index)
    # a number is content when it is part of a name ("Customer#000000001"), not a count or a year
    named = {i for i in range(1, len(toks)) if toks[i - 1][0] == "#"}
    content = [
        i for i, (t, _, _) in enumerate(toks)
        if not used[i] and t not in STOPWORDS and (not t.isdigit() or i in named)
        and not _dating_verb(toks, used, i)
    ]  # fmt: skip
    covered = {i for c in chosen for i in range(c.start, c.end)}
    if any(c.per_item for c in concepts):  # 'worth', 'each' were read
        covered |= {i for i, (t, _, _) in enumerate(toks) if t in PER_ITEM}
    unmatched = [("#" if i in named else "") + toks[i][0] for i in content if i not in covered]
    guessed = [c.phrase for c in chosen if c.how == "embedding"]
    return _build(
        question, model, index, spec, concepts, rank, sort_at, share, unmatched, content, toks, guessed
    )


def _asked_rows(found: list[Candidate], toks: list[tuple[str, int, int]], index: Index) -> list[Candidate]:
    """'which products sold more than 2,000 units': after 'which', a measure named by a cube's name and
    a verb ('products sold') is the cube's rows asked for and what they did, not that measure."""
    words = [t for t, _, _ in toks]
    out = []
    for c in found:
        first = c.phrase.split()[0]
        entity = next((e for e in index.exact.get(first, ()) if e.kind == "entity"), None)
        if (
            c.end - c.start > 1 and c.start and words[c.start - 1] in ("which", "what")
            and entity is not None and all(e.kind == "measure" for e in c.entries)
        ):  # fmt: skip
            continue
        out.append(c)
    return out


def _dating_verb(toks: list[tuple[str, int, int]], used: list[bool], i: int) -> bool:
    """'placed' in 'orders placed in 1996': says only that the period dates the rows' creation.
    ('received' may name a date of its own, as a receipt date, so it stays content.)"""
    if toks[i][0] not in CREATION_VERBS - {"received"} or i + 1 >= len(toks):
        return False
    return used[i + 1] or toks[i + 1][0] in TIME_WORDS


# --- phrases ---------------------------------------------------------------------------------


def _grams(toks: list[tuple[str, int, int]], used: list[bool], index: Index) -> list[tuple[int, int, str]]:
    """Every n-gram (n ≤ 4) of unused tokens; stopwords may not start or end one unless the whole
    phrase is a name in the model ('order', 'total price' are members, not filler)."""
    words = [word(t) for t, _, _ in toks]
    out = []
    for n in (4, 3, 2, 1):
        for i in range(len(toks) - n + 1):
            if any(used[i : i + n]):
                continue
            part = words[i : i + n]
            if part[0] == "#" or part[-1] == "#":
                continue
            phrase = " ".join(w for w in part if w != "#")  # "Brand#23" is the value "brand 23"
            if (phrase in index.exact and phrase not in GENERIC) or phrase in index.values:
                out.append((i, i + n, phrase))
                continue
            if n > 1 and (part[0] in STOPWORDS or part[-1] in STOPWORDS):
                continue
            if all(w in STOPWORDS for w in part) or (n == 1 and part[0].isdigit()):
                continue
            out.append((i, i + n, phrase))
    for i in range(len(toks) - 3):  # "completed vs returned orders": completed orders, returned orders
        if words[i + 1] in ("vs", "versus", "and", "or") and not used[i]:
            shared = f"{words[i]} {words[i + 3]}"
            if shared in index.exact and f"{words[i + 2]} {words[i + 3]}" in index.exact:
                out = [g for g in out if g[:2] != (i, i + 1)]  # "completed" alone is no longer asked about
                out.append((i, i + 1, shared))
    return out


def select(candidates: list[Candidate]) -> list[Candidate]:
    """Best non-overlapping phrases: score, then length (a longer exact phrase beats its parts)."""

    def weight(c: Candidate) -> float:
        return c.score * (1 + 0.2 * (c.end - c.start - 1))

    chosen: list[Candidate] = []
    taken: set[int] = set()
    # on a tie, a cube's own name first: in "returned line items" the head noun names the rows
    ordered = sorted(candidates, key=lambda c: (-weight(c), "entity" not in _kinds(c), c.start))
    for c in ordered:
        span = set(range(c.start, c.end))
        if span & taken:
            # the same span with as good a score (e.g. a value and a member): keep as an alternative
            same = next((x for x in chosen if (x.start, x.end) == (c.start, c.end)), None)
            if same is not None and c.score >= same.score - 0.05 and c.how == "value" and not same.values:
                same.values = c.values
            continue
        chosen.append(c)
        taken |= span
    return sorted(chosen, key=lambda c: c.start)


# --- roles -----------------------------------------------------------------------------------


def _roles(
    chosen: list[Candidate],
    toks: list[tuple[str, int, int]],
    count_cues: list[int],
    comparators: list[tuple[str, float, int, bool]],
    index: Index,
    lowered: str,
    dated: bool = False,
) -> list[Concept]:
    """`dated`: the question names a period (then "buyers last month" are the period's buyers)."""
    words = [t for t, _, _ in toks]
    question_words = {word(w) for w in words}
    concepts: list[Concept] = []
    filtered: dict[int, tuple[str, float, bool]] = {}
    at_of: dict[int, int] = {}  # a filtered candidate's comparator: token index of its number
    for op, number, at, pct in comparators:
        end = _number_end(words, at)  # "more than half a million in revenue": revenue is what is compared
        after = next((c for c in chosen if end <= c.start <= end + 2 and c.entries), None)
        before = next((c for c in reversed(chosen) if at - 5 <= c.end - 1 < at and c.entries), None)
        target = after or before
        if target is not None:
            filtered[id(target)] = (op, number, pct)
            at_of[id(target)] = at
    clear_measure = any(_kinds(c) == {"measure"} for c in chosen if not c.values or c.entries) or bool(
        filtered
    )
    for c in chosen:
        before = words[max(0, c.start - 3) : c.start]
        if (
            c.values
            and c.phrase in CREATION_VERBS
            and (
                before[-1:] in (["were"], ["was"], ["been"], ["are"], ["who"], ["they"], ["we"])
                or set(words[c.end : c.end + 1]) & (TIME_WORDS | VERB_OBJECTS)
                or (words[c.end : c.end + 1] and words[c.end].isdigit())
            )
        ):
            continue  # "orders placed in May", "customers who placed 3 orders": the verb, not a status
        if c.values and (not c.entries or c.how == "value" or _beside_value(c, chosen, words)):
            # "not Germany", "excluding the UK", "not from the United Kingdom", "outside the DACH region"
            lead = list(before)
            while lead and lead[-1] in NEGATION_FILLER:
                lead.pop()
            negate = any(w in NEGATION for w in before[-2:]) or bool(lead[-1:] and lead[-1] in NEGATION)
            previous = concepts[-1] if concepts else None
            if (
                before[-1:] in (["and"], ["or"], [","], ["nor"])
                and previous is not None
                and previous.role == "value"
            ):
                negate = negate or previous.negate  # "excluding returned and return pending"
            cands = []
            for v in c.values:
                bonus = 0.05 if any(w in question_words for w in _title_words(v.entry) - {c.phrase}) else 0.0
                # "Germany" alone is the customer's nation, not the supplier's: unasked qualifiers cost
                extra = set(norm(humanize(v.entry.cube)).split()) - question_words - set(c.phrase.split())
                cands.append((v.entry, c.score + bonus - 0.02 * len(extra)))
            value = Concept("value", _dedupe(cands), c.phrase, c.start, c.end, c.values[0].value, negate)
            value.alternative = before[-1:] == ["or"]
            concepts.append(value)
            continue
        kinds = _kinds(c)
        if id(c) in filtered:
            op, number, pct = filtered[id(c)]
            rate_dims = [
                (e, c.score + (0.02 if index.names(e.cube, lowered) else 0.0))
                for e in c.entries if e.kind == "dimension" and _format(e) == "percent"
            ]  # "orders with a discount": the orders' discount, not the lines'  # fmt: skip
            rate_dims.sort(key=lambda x: -x[1])
            if pct and rate_dims:  # "orders with a discount over 10%": the order's rate, not an amount
                concepts.append(Concept("dimension_filter", rate_dims, c.phrase, c.start, c.end, operator=op,
                                        number=number, percent=True))  # fmt: skip
                continue
            per_item = [] if pct else _per_item_value(c, index, words, at_of[id(c)])
            if per_item:  # "orders worth more than 400k each": one order's total, not the count
                if not any("measure" in _kinds(x) for x in chosen if x is not c):
                    concepts.append(Concept("measure", _as_measure(c, index), c.phrase, c.start, c.end))
                concepts.append(Concept("dimension_filter", per_item, c.phrase, c.start, c.end, operator=op,
                                        number=number, per_item=True))  # fmt: skip
                continue
            if "measure" in kinds or "entity" in kinds:
                cands = _as_measure(c, index)
                if pct:  # "under 20%": the rate, not the count or amount it is built from
                    rates = [
                        (e, c.score + 0.01) for e in index.entries
                        if e.kind == "measure" and _format(e) == "percent"
                        and any(p.startswith(c.phrase + " ") for p in e.phrases)
                    ]  # fmt: skip
                    boosted = [(e, s + (0.03 if _format(e) == "percent" else 0)) for e, s in cands + rates]
                    cands = sorted(boosted, key=lambda x: -x[1])
                concepts.append(Concept("measure_filter", cands, c.phrase, c.start, c.end, operator=op,
                                        number=number, percent=pct))  # fmt: skip
                continue
            dims = [(e, c.score) for e in c.entries if e.kind == "dimension" and e.type == "number"]
            if dims:
                concepts.append(Concept("dimension_filter", dims, c.phrase, c.start, c.end, operator=op,
                                        number=number))  # fmt: skip
                continue
        if "segment" in kinds and kinds <= {"segment", "entity"}:
            concepts.append(Concept("segment", [(e, c.score) for e in c.entries if e.kind == "segment"],
                                    c.phrase, c.start, c.end))  # fmt: skip
            continue
        counted = any(0 < c.start - k <= 3 for k in count_cues) or bool(set(before[-2:]) & DISTINCT)
        grouped = (
            bool(set(before[-2:]) & BREAKDOWN)
            or _ranked_noun(words, c.start)
            or (
                before[-1:] in (["and"], [","], ["&"])
                and bool(concepts)
                and concepts[-1].role in ("dimension", "time")
            )
            or before[-1:] in (["list"], ["rank"], ["compare"])
        )
        if kinds == {"dimension"} or (
            ("dimension" in kinds or "entity" in kinds) and grouped and not counted
        ):
            dims = _as_dimension(c, index)
            if dims:
                role = "time" if dims[0][0].type == "time" else "dimension"
                listing = "entity" in kinds and role == "dimension"
                concepts.append(Concept(role, dims, c.phrase, c.start, c.end, listing=listing))
                continue
        # "orders and revenue", "orders, customers and revenue": one of several measures; but in
        # "by channel and region" the list is of breakdowns
        after_measure = bool(concepts) and concepts[-1].role in ("measure", "measure_filter")
        following = next((x for x in chosen if x.start == c.end + 1), None)
        listed = (words[c.start - 1 : c.start] in (["and"], ["&"], ["plus"], [","]) and after_measure) or (
            words[c.end : c.end + 1] in (["and"], ["&"], [","])
            and not set(before) & BREAKDOWN
            and following is not None
            and "measure" in _kinds(following)
        )
        qualifies = words[c.start - 1 : c.start] in (["from"], ["for"], ["among"], ["of"]) and any(
            x.role in ("measure", "measure_filter") for x in concepts
        )
        prep = words[c.start - 1] if c.start else ""
        if prep in QUALIFYING and "measure" in kinds and any(x.role == "measure" for x in concepts):
            # "revenue from completed orders", "net sales excluding cancelled orders": a segment
            negate = prep in NEGATION or words[max(0, c.start - 2) : c.start - 1] == ["not"]
            segment = _segment_for(index, c.phrase, negate)
            if segment:
                concepts.append(Concept("segment", segment, c.phrase, c.start, c.end))
                continue
        if "entity" in kinds and (clear_measure or qualifies) and not counted and not listed:
            # "basket size for app orders", "customers' opt-in rate": the cube's name qualifies the
            # measure; "customers with more than 5 orders" lists the customers.
            if words[c.end : c.end + 1] in (["with"], ["who"], ["that"], ["having"], ["where"]):
                dims = _as_dimension(c, index)
                if dims:
                    concepts.append(Concept("dimension", dims, c.phrase, c.start, c.end, listing=True))
            continue
        if "measure" in kinds or "entity" in kinds:
            if (
                listed
                or counted
                or not clear_measure
                or kinds == {"measure"}
                or ("measure" in kinds and "dimension" not in kinds)
            ):
                distinct = bool(set(before[-2:]) & DISTINCT)
                cands = _as_measure(c, index, prefer_count=counted, distinct=distinct, dated=dated)
                concepts.append(Concept("measure", cands, c.phrase, c.start, c.end))
                continue
            dims = _as_dimension(c, index)
            if dims:
                concepts.append(Concept("dimension", dims, c.phrase, c.start, c.end))
                continue
        if "dimension" in kinds:
            dims = _as_dimension(c, index)
            if dims:
                role = "time" if dims[0][0].type == "time" else "dimension"
                concepts.append(Concept(role, dims, c.phrase, c.start, c.end))
    return concepts


def _aggregated(concepts: list[Concept], toks: list[tuple[str, int, int]], index: Index) -> list[Concept]:
    """'average promo rate' where the promo rate is a number dimension: the measure that averages the
    same column ('average discount'), found by comparing their SQL, not their names."""
    words = [t for t, _, _ in toks]
    out: list[Concept] = []
    for c in concepts:
        agg = AGGREGATE_WORDS.get(words[c.start - 1]) if c.start and c.role == "dimension" else None
        dim = c.cands[0][0].target if agg else None
        if agg and isinstance(dim, Dimension) and dim.type == "number" and dim.expression is not None:
            same = [
                (e, c.cands[0][1] + 0.01) for e in index.entries
                if e.kind == "measure" and e.type in agg and e.target is not None and e.cube == dim.cube
                and getattr(e.target, "expression", None) is not None
                and e.target.expression.sql() == dim.expression.sql()
            ]  # fmt: skip
            if same:
                out = [x for x in out if not (x.end == c.start and x.role == "measure")]  # the bare "average"
                out.append(Concept("measure", same, c.phrase, c.start - 1, c.end))
                continue
        out.append(c)
    return out


def _share_measure(index: Index, toks: list[tuple[str, int, int]]) -> tuple[Entry, set[int]] | None:
    """A measure named '<word> share' whose word the question uses ('online share' for 'share of
    orders placed online'), with the tokens that word takes; None when the model has none."""
    words = [word(t) for t, _, _ in toks]
    if "share" not in words:
        return None
    for e in index.entries:
        if e.kind != "measure":
            continue
        for phrase in e.phrases:
            parts = phrase.split()
            rest = [w for w in parts if w != "share"]
            if "share" in parts and rest and all(w in words for w in rest):
                return e, {i for i, w in enumerate(words) if w in rest}
    return None


def _flag_qualifiers(concepts: list[Concept], toks: list[tuple[str, int, int]]) -> list[Concept]:
    """'newsletter opt-in rate': a yes/no dimension right before a measure describes the measure;
    'by newsletter opt-in' still breaks down."""
    words = [t for t, _, _ in toks]
    out = []
    for i, c in enumerate(concepts):
        nxt = concepts[i + 1] if i + 1 < len(concepts) else None
        if (
            c.role == "dimension" and words[c.start - 1 : c.start] in (["from"], ["of"], ["among"])
            and words[c.end : c.end + 1] in (["who"], ["that"], ["which"], ["whose"])
            and any(x.role == "measure" and x.end <= c.start for x in concepts)
        ):  # "revenue from customers who joined this year": whose revenue, not one row per customer
            continue  # fmt: skip
        if (
            c.role == "dimension" and c.cands[0][0].type == "boolean" and nxt is not None
            and nxt.role == "measure" and nxt.start == c.end
            and not set(words[max(0, c.start - 2) : c.start]) & BREAKDOWN
        ):  # fmt: skip
            continue
        if (
            c.role == "dimension"
            and words[c.start - 1 : c.start] == ["per"]
            and any(
                x is not c and x.role in ("dimension", "time") and words[x.start - 1 : x.start] == ["by"]
                for x in concepts
            )  # a breakdown of its own elsewhere: "per store by region"
            and any(
                f"per {c.phrase}" in p for m in concepts if m.role == "measure" for p in m.cands[0][0].phrases
            )
        ):
            continue  # "average daily visits per store": the measure's own "per store", not a breakdown
        if (
            c.role == "dimension" and c.cands[0][0].type == "boolean"
            and not set(words[max(0, c.start - 2) : c.start]) & BREAKDOWN
            and not set(words) & {"vs", "versus", "compared", "against"}
            and c.phrase in {w for p in c.cands[0][0].phrases for w in [p.split()[-1]]}
        ):  # "orders placed online": online ones, not a breakdown by online or not  # fmt: skip
            negate = any(w in NEGATION for w in words[max(0, c.start - 2) : c.start])
            c = Concept("value", c.cands[:1], c.phrase, c.start, c.end, "true", negate)
        out.append(c)
    return out


PERCENT_ASKED = re.compile(
    r"\b(?:what|which)\s+(?:percent(?:age)?|proportion|share|fraction)\b|^\s*percent(?:age)?\b"
)
# Before a filtered count or a segment, words that make it a condition on the rows measured.
CONDITION_INTENT = frozenset({"for", "from", "among"})


def _as_conditions(
    concepts: list[Concept], toks: list[tuple[str, int, int]], index: Index
) -> list[Concept]:
    """'revenue excluding returns', 'orders that are not completed', 'revenue for returned orders':
    a filtered count or a segment named after a negation (or, beside another measure, after
    'for'/'from') becomes the filter it stands for (`status != 'returned'`)."""
    words = [t for t, _, _ in toks]
    measured = sum(c.role == "measure" for c in concepts)
    out: list[Concept] = []
    for c in concepts:
        before = words[max(0, c.start - 3) : c.start]
        negate = bool(set(before) & NEGATION)
        qualifies = measured > 1 and bool(before) and before[-1] in CONDITION_INTENT
        wanted = (c.role == "segment" and negate) or (c.role == "measure" and (negate or qualifies))
        top = c.cands[0][0] if c.cands else None
        found = as_condition(index, top) if wanted and top is not None and not negates(top) else None
        if found is None:
            out.append(c)
            continue
        dimension, values = found
        measured -= c.role == "measure"
        for value in values:
            score = c.cands[0][1]
            out.append(Concept("value", [(dimension, score)], c.phrase, c.start, c.end, value, negate,
                               alternative=True))  # one filter, not values compared side by side  # fmt: skip
    return out


def _beside_value(c: Candidate, chosen: list[Candidate], words: list[str]) -> bool:
    """Is `c` listed with a value of the same dimension ('flagship vs standard stores')?"""
    keys = {v.entry.key for v in c.values}
    for other in chosen:
        if other is c or not other.values or other.entries:
            continue
        between = words[min(c.end, other.end) : max(c.start, other.start)]
        if (
            len(between) <= 2
            and set(between) <= {"vs", "versus", "and", "or", ",", "&"}
            and keys & {v.entry.key for v in other.values}
        ):
            return True
    return False


def _segment_for(index: Index, phrase: str, negate: bool) -> list[tuple[Entry, float]]:
    """Segments named by a phrase's words less its cube's name: 'completed order' → completed;
    negated, 'cancelled order' → not_cancelled."""
    entity_words = {w for e in index.entries if e.kind == "entity" for p in e.phrases for w in p.split()}
    core = " ".join(w for w in phrase.split() if w not in entity_words)
    if not core:
        return []
    wanted = {f"not {core}", f"non {core}"} if negate else {core}
    return [(e, 0.95) for e in index.entries if e.kind == "segment" and wanted & set(e.phrases)]


def _merge_values(concepts: list[Concept], toks: list[tuple[str, int, int]]) -> list[Concept]:
    """'the Nordics region', 'region DACH': a dimension named next to one of its values names the
    filter, not a breakdown ('by region' still breaks down)."""
    words = [t for t, _, _ in toks]
    values = [c for c in concepts if c.role == "value"]
    out = []
    for c in concepts:
        if c.role == "dimension" and not set(words[max(0, c.start - 2) : c.start]) & BREAKDOWN:
            keys = {e.key for e, _ in c.cands[:1]}
            near = [v for v in values if 0 <= v.start - c.end <= 1 or 0 <= c.start - v.end <= 1]
            if any(e.key in keys for v in near for e, _ in v.cands):
                continue
        out.append(c)
    return out


def _qualifiers(concepts: list[Concept], index: Index) -> list[Concept]:
    """'part brands', 'supplier country', 'customer region': a cube named right before one of its
    dimensions (or of a cube it reaches) says whose dimension it is, not that its rows are listed."""
    out: list[Concept] = []
    for i, c in enumerate(concepts):
        nxt = concepts[i + 1] if i + 1 < len(concepts) else None
        if c.listing and nxt is not None and nxt.role in ("dimension", "time") and nxt.start == c.end:
            cube = c.cands[0][0].cube
            reach = index.joins.get(cube, [cube])
            nxt.cands = sorted(
                [(e, s + (0.04 if e.cube in reach else 0.0)) for e, s in nxt.cands], key=lambda x: -x[1]
            )
            continue
        out.append(c)
    return out


def _ranked_noun(words: list[str], start: int) -> bool:
    """'top 5 customers': the noun right after a rank cue is what is ranked."""
    window = words[max(0, start - 3) : start]
    cues = {
        "top",
        "bottom",
        "best",
        "worst",
        "biggest",
        "largest",
        "highest",
        "leading",
        "lowest",
        "smallest",
    }
    return any(w in cues for w in window) or bool(
        window and window[-1].isdigit() and len(window) > 1 and window[-2] in ("top", "bottom")
    )


# After a creation verb these make it a verb with an object ("placed the most orders", "made more than"),
# not a status value ("placed orders").
VERB_OBJECTS = frozenset({"the", "more", "most", "over", "under", "fewer", "less", "at", "a", "an", "any"})
# What may follow a comparator's number before the thing compared: "half a million in revenue".
NUMBER_TAIL = frozenset(
    {"a", "hundred", "thousand", "million", "billion", "k", "m", "bn", "in", "of", "dollars", "euros", "usd"}
)


def _number_end(words: list[str], at: int) -> int:
    """The first token after a comparator's number and its tail ('half a million in')."""
    end = at + 1
    while end < len(words) and words[end] in NUMBER_TAIL:
        end += 1
    return end


# Words that put a comparator on one item's value: "orders worth over 400k", "parts priced above 2000 each".
PER_ITEM = frozenset({"worth", "valued", "priced", "costing", "each", "apiece"})
VALUE_WORDS = frozenset({"value", "total", "price", "amount", "worth"})


def _per_item_value(c: Candidate, index: Index, words: list[str], at: int) -> list[tuple[Entry, float]]:
    """The named cube's own value dimensions (number type, named as a value, price or total) when the
    comparator is about single items: a per-item word between the cube's name and the number, or
    'each' right after it. Empty when the question is not about items or the cube has no such member."""
    between = set(words[c.end : at]) | set(words[at + 1 : at + 2])
    if not between & PER_ITEM:
        return []
    cubes = {e.cube for e in c.entries if e.kind == "entity" or (e.kind == "measure" and e.type == "count")}
    return [
        (e, c.score)
        for e in index.entries
        if e.kind == "dimension" and e.type == "number" and e.cube in cubes
        and _title_words(e) & VALUE_WORDS and _format(e) != "percent"
    ]  # fmt: skip


def _title_words(e: Entry) -> set[str]:
    return {w for p in e.phrases for w in p.split()}


def _names_entity(index: Index, cube: str, phrase: str) -> bool:
    entity = index.entity(cube)
    return entity is not None and phrase in entity.phrases


def _format(e: Entry) -> str | None:
    return getattr(e.target, "format", None)


def _kinds(c: Candidate) -> set[str]:
    return {e.kind for e in c.entries}


def _dedupe(cands: list[tuple[Entry, float]]) -> list[tuple[Entry, float]]:
    best: dict[str, tuple[Entry, float]] = {}
    for e, s in cands:
        if e.path not in best or s > best[e.path][1]:
            best[e.path] = (e, s)
    return sorted(best.values(), key=lambda x: -x[1])


def _as_measure(
    c: Candidate, index: Index, prefer_count: bool = False, distinct: bool = False, dated: bool = False
) -> list[tuple[Entry, float]]:
    out = [(e, c.score) for e in c.entries if e.kind == "measure"]
    for e in c.entries:
        if e.kind == "entity":
            count = _count_measure(index, e.cube)
            if count is not None:
                # "customers" counts the customers cube rather than another cube's distinct count;
                # "footfall" (a store-traffic synonym) is still the visits measure, not a row count
                # with a period, "buyers last month" are those who bought then (a distinct count of
                # an event cube), not customers who signed up then
                only_counts = all(x.type in ("count", "count_distinct") for x, _ in out)
                out.append((count, c.score + (0.005 if only_counts and not (dated and out) else -0.01)))
    if prefer_count:
        out = [(e, s + (0.02 if e.type in ("count", "count_distinct") else 0)) for e, s in out]
    if distinct:  # "different customers", "unique buyers"
        out = [(e, s + (0.03 if e.type.startswith("count_distinct") else 0)) for e, s in out]
    return _dedupe(out)


def _as_dimension(c: Candidate, index: Index) -> list[tuple[Entry, float]]:
    out = [(e, c.score) for e in c.entries if e.kind == "dimension"]
    for e in c.entries:
        if e.kind in ("entity", "measure"):
            label = _label_dimension(index, e.cube)
            if label is not None:
                out.append((label, c.score - 0.01))
    return _dedupe(out)


def _count_measure(index: Index, cube: str) -> Entry | None:
    found = [e for e in index.entries if e.kind == "measure" and e.cube == cube and e.type == "count"]
    named = [e for e in found if e.path.endswith(".count") and not e.is_view]
    return (named or found or [None])[0]


def _label_dimension(index: Index, cube: str) -> Entry | None:
    """The dimension that names a row of `cube` ('top 5 customers' groups by the customer's name)."""
    dims = [e for e in index.entries if e.kind == "dimension" and e.cube == cube and not e.is_view]
    for suffix in (".name", ".full_name"):
        hit = next((e for e in dims if e.path.endswith(suffix)), None)
        if hit:
            return hit
    return next((e for e in dims if "name" in e.path.split(".")[-1] and e.type == "string"), None)


def _default_time(index: Index, cube: str) -> Entry | None:
    """The cube's `default_time_dimension`, else its own time dimension, else that of the nearest
    cube it reaches many_to_one."""
    named = index.default_time.get(cube)
    if named is not None:
        hit = next((e for e in index.entries if e.path == named and e.kind == "dimension"), None)
        if hit is not None:
            return hit
    for near in index.joins.get(cube, [cube]):
        hit = next(
            (e for e in index.entries if e.kind == "dimension" and e.type == "time" and e.cube == near
             and e.target is not None and e.target.cube == near),
            None,
        )  # fmt: skip
        if hit:
            return hit
    return None


# --- the query -------------------------------------------------------------------------------


def _build(
    question: str,
    model: SemanticModel,
    index: Index,
    spec: TimeSpec,
    concepts: list[Concept],
    rank: Rank | None,
    sort_at: tuple[int, bool] | None,
    share: bool,
    unmatched: list[str],
    content: list[int],
    toks: list[tuple[str, int, int]],
    guessed: list[str],
) -> Interpretation:
    needs_time = spec.period is not None or spec.granularity is not None or spec.trend
    measures = [c for c in concepts if c.role in ("measure", "measure_filter")]
    if not measures:
        # "corporate customers by country", "least used payment method": nothing to measure but a
        # segment, a ranking or a period: count the rows of the cube named
        source = next((c for c in concepts if c.role == "segment"), None)
        if source is None and (rank is not None or needs_time):
            source = next((c for c in concepts if c.role == "dimension"), None)
        count = _count_measure(index, source.cands[0][0].cube) if source is not None else None
        if count is not None:
            concepts = [*concepts, Concept("measure", [(count, 0.9)], "(count)", source.start, source.end)]
            measures = [concepts[-1]]
    time_missing = False
    if measures:
        reach = index.joins.get(measures[0].cands[0][0].cube, [])
        for c in concepts:
            if c.role == "time" and c.cands[0][0].cube not in reach:
                # "revenue on black friday": order lines are dated by their order, not by store traffic
                default = _default_time(index, measures[0].cands[0][0].cube)
                if default is not None:
                    c.cands = [(default, c.cands[0][1])]
    if needs_time and not any(c.role == "time" for c in concepts):
        anchors = [*measures, *(c for c in concepts if c.role == "dimension")]
        default = next(
            (d for a in anchors for d in [_default_time(index, a.cands[0][0].cube)] if d is not None), None
        )
        if default is not None:
            concepts = [*concepts, Concept("time", [(default, 0.9)], "(time)")]
        else:
            time_missing = True  # never answer "last month" with all time: say so instead
    if not any(c.role in ("measure", "measure_filter", "dimension", "time") for c in concepts):
        return _nothing(question, index, unmatched)
    options = place(index, concepts)
    checked = None
    for score, picks in options:
        if _merges_rows(index, concepts, picks):
            continue  # this owner lists repeating names without their key: other owners may not
        query = _query(index, concepts, picks, spec, rank, sort_at)
        try:
            parse_query(model, query)
        except HeadlessBIError:
            continue
        checked = (score, picks, query)
        break
    if checked is None:
        return _nothing(
            question, index, unmatched, reason="the members found cannot be combined in one query"
        )
    score, picks, query = checked
    lowered = question.lower()
    if HAVE.search(lowered) and query.get("dimensions") and not query.get("filters"):
        # "which customers have returned orders": those with at least one
        first = next((e for c, e in zip(concepts, picks, strict=True) if c.role == "measure"), None)
        if first is not None and first.type in ("count", "count_distinct", "count_distinct_approx"):
            query["filters"] = [{"member": first.path, "operator": "gt", "values": ["0"]}]
    titles = {e.path: e.title for e in picks}
    if PERCENT_ASKED.search(lowered):
        rated = rate_for(index, query)  # "what percent of orders were returned": the return rate
        if rated is not None:
            query = {k: v for k, v in rated[0].items() if v not in ([], None)}
            titles[rated[1].path] = rated[1].title
            share = False  # the rate is the share asked for
    mean = score / max(1, len(concepts))
    coverage = 1.0 - len(unmatched) / max(1, len(content))
    confidence = max(0.05, min(0.97, mean * (0.45 + 0.55 * coverage)))
    if not query.get("measures"):
        confidence = min(confidence * 0.9, 0.55)  # a list of values: maybe a measure was meant
    if rank is not None and not query.get("measures"):
        confidence = min(confidence, 0.4)
    alternatives = _alternatives(model, index, concepts, picks, spec, rank, sort_at)
    if alternatives:
        confidence = min(confidence, 0.6)
    unknown = [w for w in unmatched if len(w) >= 3 and not w.isdigit()]
    if unknown:
        # a word the model has no name for may be the point of the question ("profit by supplier"):
        # show the reading, but never as a sure answer
        confidence = min(confidence, 0.55)
        alternatives.append({
            "clarification": f"I found nothing in the model for: {', '.join(unknown)}. "
            "The answer leaves them out; rephrase with one of the suggested members if they matter.",
            "suggestions": [e.path for e in suggest(index, ' '.join(unknown))[:5]],
        })  # fmt: skip
    amount_words = {w for w, _, _ in toks} & AMOUNT_WORDS
    counted_entity = [
        e for c, e in zip(concepts, picks, strict=True)
        if c.role == "measure" and e.type == "count" and _names_entity(index, e.cube, c.phrase)
    ]  # fmt: skip
    if counted_entity and amount_words and not COUNT.search(lowered):
        # "total value of open orders": a count of orders is one reading, not the only one
        confidence = min(confidence, 0.5)
        rivals = [x for x in index.by_owner.get(counted_entity[0].owner, []) if x.kind == "measure"]
        alternatives.append({
            "clarification": f"Which {' or '.join(sorted(amount_words))} of {counted_entity[0].cube} "
            "do you mean?",
            "suggestions": [x.path for x in rivals[:6]],
        })  # fmt: skip
    elif counted_entity and not COUNT.search(lowered):
        # "bank transfer payments": the number of payments, or the money? offer the money as well
        swapped = _money_instead(model, index, query, counted_entity[0])
        if swapped is not None:
            alternatives.append({"query": swapped, "restatement": restate(swapped, titles)})
            confidence = min(confidence, 0.75)
    if guessed:
        # a word matched by meaning only ("profit" → revenue): a reading to confirm, not a fact
        confidence = min(confidence, 0.58)
        pairs = zip(concepts, picks, strict=True)
        read_as = [titles.get(e.path, e.path) for c, e in pairs if c.phrase in guessed]
        words = ", ".join(repr(g) for g in guessed)
        alternatives.append({
            "clarification": f"I read {words} as {', '.join(read_as)}. Is that what you mean?" if read_as
            else f"I left out {words}: it names no member of the model. Rephrase with one of the "
            "suggested members if it matters.",
            "suggestions": [e.path for e in suggest(index, " ".join(guessed))[:5]],
        })  # fmt: skip
    for doubt in unapplied_cues(index, toks, concepts, picks, query, share):
        # a cue the reading did not carry out ("excluding", "what percent"): never a sure answer
        confidence = min(confidence, 0.55)
        alternatives.append({"clarification": doubt, "suggestions": [e.path for e in picks[:5]]})
    if time_missing:
        names = ", ".join(titles.get(m, m) for m in query.get("measures", []))
        confidence = min(confidence, 0.3)
        alternatives.insert(0, {
            "clarification": f"{names or 'This'} has no date to apply "
            f"'{' '.join(spec.phrases) or 'the period'}' to: the numbers cover all time. "
            "Which date do you mean?",
            "suggestions": [e.path for e in index.entries if e.kind == "dimension" and e.type == "time"][:5],
        })  # fmt: skip
    compare_query = None
    if spec.compare_to is not None and query.get("timeDimensions"):
        compare_query = {
            **query,
            "timeDimensions": [
                {**td, "dateRange": spec.compare_to.as_range()} for td in query["timeDimensions"]
            ],
        }
    return Interpretation(
        question=question,
        query=query,
        restatement=restate(query, titles, share=share),
        confidence=round(confidence, 3),
        alternatives=alternatives,
        compare_query=compare_query,
        compare_label=spec.compare_to.label() if spec.compare_to else None,
        share=share,
        chart=suggest_chart(query, share=share),
        unmatched=unmatched,
        titles=titles,
    )


def _query(
    index: Index,
    concepts: list[Concept],
    picks: list[Entry],
    spec: TimeSpec,
    rank: Rank | None,
    sort_at: tuple[int, bool] | None,
) -> dict[str, Any]:
    measures: list[str] = []
    dimensions: list[str] = []
    filters: list[dict[str, Any]] = []
    segments: list[str] = []
    values: dict[tuple[str, bool], list[str]] = {}
    time: str | None = None
    for c, e in zip(concepts, picks, strict=True):
        if c.role == "measure" and e.path not in measures:
            measures.append(e.path)
        elif c.role == "measure_filter":
            if e.path not in measures:
                measures.append(e.path)
            filters.append({"member": e.path, "operator": c.operator, "values": [str(_num(c.number))]})
        elif c.role == "dimension_filter":
            filters.append({"member": e.path, "operator": c.operator, "values": [str(_num(c.number))]})
        elif c.role == "dimension" and e.path not in dimensions:
            key = _key_of(index, e) if c.listing and e.key in index.many_values else None
            if key is not None and key.path not in dimensions:
                dimensions.append(key.path)  # two customers may share a name: keep them apart
            dimensions.append(e.path)
        elif c.role == "time" and time is None:
            time = e.path
        elif c.role == "value":
            values.setdefault((e.path, c.negate), [])
            if c.value not in values[(e.path, c.negate)]:
                values[(e.path, c.negate)].append(c.value)  # type: ignore[arg-type]
        elif c.role == "segment" and e.path not in segments:
            segments.append(e.path)
    for (path, negate), vals in values.items():
        filters.append({"member": path, "operator": "notEquals" if negate else "equals", "values": vals})
        union = any(
            c.role == "value" and c.alternative
            for c, e in zip(concepts, picks, strict=True)
            if e.path == path
        )
        if len(vals) > 1 and not negate and not union and path not in dimensions:
            dimensions.append(path)  # "Home & Kitchen vs Beauty": compared side by side
    query: dict[str, Any] = {}
    if measures:
        query["measures"] = measures
    if dimensions:
        query["dimensions"] = dimensions
    if time is not None:
        td: dict[str, Any] = {"dimension": time}
        granularity = spec.granularity or ("month" if spec.trend else None)
        named = any(c.role == "time" and c.phrase != "(time)" for c in concepts)
        if granularity is None and named and spec.period is None:
            granularity = "day"
        if granularity:
            td["granularity"] = granularity
        if spec.period is not None:
            td["dateRange"] = spec.period.as_range()
        query["timeDimensions"] = [td]
    if filters:
        query["filters"] = filters
    if segments:
        query["segments"] = segments
    order_member = None
    if sort_at is not None:
        at, desc = sort_at
        pairs = list(zip(concepts, picks, strict=True))
        if at < 0:
            hit = next((e for c, e in pairs if c.role == "dimension"), None)
        else:
            hit = next((e for c, e in pairs if c.start >= at), None)
        if hit is not None and (hit.path in measures or hit.path in dimensions):
            query["order"] = {hit.path: "desc" if desc else "asc"}
            order_member = hit.path
    if rank is not None and measures and order_member is None:
        query["order"] = {measures[0] if len(measures) == 1 else _rank_measure(concepts, picks, rank):
                          "desc" if rank.descending else "asc"}  # fmt: skip
    if rank is not None and rank.limit:
        query["limit"] = rank.limit
    return query


def _money_instead(
    model: SemanticModel, index: Index, query: dict[str, Any], count: Entry
) -> dict[str, Any] | None:
    """The query with the cube's money measure (a currency sum) in place of its row count; None when
    the cube has none, or a filter is on the count (its number is a count)."""
    if any(f.get("member") == count.path for f in query.get("filters", [])):
        return None
    money = next(
        (x for x in index.by_owner.get(count.owner, []) if x.kind == "measure" and x.type == "sum"
         and _format(x) == "currency" and x.cube == count.cube),
        None,
    )  # fmt: skip
    if money is None:
        return None
    swap = {count.path: money.path}
    swapped = {**query, "measures": [swap.get(m, m) for m in query["measures"]]}
    if isinstance(query.get("order"), dict):
        swapped["order"] = {swap.get(k, k): v for k, v in query["order"].items()}
    try:
        parse_query(model, swapped)
    except HeadlessBIError:
        return None
    return swapped


def _merges_rows(index: Index, concepts: list[Concept], picks: list[Entry]) -> bool:
    """Would listing by this label merge rows (two customers called the same) for want of a key?"""
    return any(
        c.role == "dimension" and c.listing and e.key in index.many_values and _key_of(index, e) is None
        for c, e in zip(concepts, picks, strict=True)
    )


def _key_of(index: Index, label: Entry) -> Entry | None:
    """The visible primary key beside `label` (same owner, same cube)."""
    cube = label.target.cube if label.target is not None else label.cube
    for e in index.by_owner.get(label.owner, []):
        target = e.target
        if isinstance(target, Dimension) and target.primary_key and target.cube == cube:
            return e
    return None


def _rank_measure(concepts: list[Concept], picks: list[Entry], rank: Rank) -> str:
    """With several measures, the one ranked by is the one named after the cue ('... by revenue')."""
    after = [
        e.path for c, e in zip(concepts, picks, strict=True) if c.role == "measure" and c.start > rank.at
    ]
    first = [e.path for c, e in zip(concepts, picks, strict=True) if c.role == "measure"]
    return (after or first)[-1] if after else first[0]


def _num(value: float | None) -> int | float:
    assert value is not None
    return int(value) if float(value).is_integer() else value


def _alternatives(
    model: SemanticModel,
    index: Index,
    concepts: list[Concept],
    picks: list[Entry],
    spec: TimeSpec,
    rank: Rank | None,
    sort_at: tuple[int, bool] | None,
) -> list[dict[str, Any]]:
    """Other readings when a phrase fits two different members almost equally well."""
    out: list[dict[str, Any]] = []
    for i, (c, chosen) in enumerate(zip(concepts, picks, strict=True)):
        best = next((s for e, s in c.cands if e.key == chosen.key), None)
        if best is None or c.phrase == "(time)":
            continue
        rivals = [
            e for e, s in equivalents(index, c.cands)
            if e.key != chosen.key and s >= best - 0.02 and e.kind == chosen.kind
            and e.is_view == chosen.is_view and (not chosen.is_view or e.owner == chosen.owner)
        ]  # fmt: skip
        for rival in rivals[:2]:
            swapped = list(picks)
            swapped[i] = rival
            query = _query(index, concepts, swapped, spec, rank, sort_at)
            try:
                parse_query(model, query)
            except HeadlessBIError:
                continue
            titles = {e.path: e.title for e in swapped}
            out.append({"query": query, "restatement": restate(query, titles)})
    return out[:3]


def _nothing(question: str, index: Index, unmatched: list[str], reason: str | None = None) -> Interpretation:
    """No query: ask back, offering the measures closest to the question."""
    suggestions = suggest(index, question)
    names = ", ".join(f"{e.title} ({e.path})" for e in suggestions[:3])
    clarify = reason or "I could not match the question to any measure or dimension of the model"
    text = f"{clarify}. Which measure do you mean" + (f": {names}?" if names else "?")
    return Interpretation(
        question=question,
        query=None,
        restatement="",
        confidence=0.05,
        alternatives=[{"clarification": text, "suggestions": [e.path for e in suggestions[:5]]}],
        unmatched=unmatched,
        chart="table",
    )


def suggest(index: Index, question: str) -> list[Entry]:
    """Visible measures nearest to the whole question (embeddings if loaded, else word overlap)."""
    from headless_bi.nlq.embeddings import get_embedder
    from headless_bi.nlq.text import norm

    measures = [e for e in index.entries if e.kind == "measure" and not e.is_view]
    embedder = get_embedder()
    if embedder is not None and measures:
        import numpy as np

        q = embedder.encode([norm(question)])[0]
        vecs = embedder.encode([e.phrases[1] if len(e.phrases) > 1 else e.phrases[0] for e in measures])
        order = np.argsort(-(vecs @ q))
        return [measures[int(i)] for i in order[:5]]
    words = set(norm(question).split())
    return sorted(measures, key=lambda e: -len(words & _title_words(e)))[:5]


def suggest_chart(query: dict[str, Any], *, share: bool = False) -> str:
    tds = [td for td in query.get("timeDimensions", []) if td.get("granularity")]
    dims = query.get("dimensions", [])
    if tds:
        return "line"
    if not dims:
        return "number" if query.get("measures") else "table"
    if len(dims) == 1 and len(query.get("measures", [])) == 1:
        return "pie" if share else "bar"
    return "table"
