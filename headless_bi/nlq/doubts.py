"""Cues a reading did not carry out, said to the asker instead of answered with confidence.

The matcher may read "revenue excluding discounted orders" with no way to express the exclusion, or
"what percent of orders were returned" as a count. Each such gap becomes a sentence in the answer's
alternatives and caps its confidence below 0.6 (matcher._build): a hedged answer, never a sure number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headless_bi.nlq.conditions import negates
from headless_bi.nlq.cues import NEGATION
from headless_bi.nlq.index import Entry, Index

if TYPE_CHECKING:
    from headless_bi.nlq.matcher import Concept

PERCENT_WORDS = frozenset({"percent", "percentage", "proportion", "fraction", "pct"})
_NOT_FILTERS = frozenset(
    {"notEquals", "notContains", "notStartsWith", "notEndsWith", "notSet", "notInDateRange"}
)


# Before a count measure, words that make it a condition on the rows: "for returned orders".
FILTER_INTENT = frozenset({"for", "from", "of", "with", "among", "have", "has", "had", "who", "that"})


def unapplied_cues(
    index: Index,
    toks: list[tuple[str, int, int]],
    concepts: list[Concept],
    picks: list[Entry],
    query: dict[str, Any],
    share: bool,
) -> list[str]:
    """What the question asks for that the query does not do, each as a sentence for the asker:
    a negation that became nothing or its opposite, a percentage answered with counts or amounts, a
    threshold compared with the total of all rows rather than per row or group."""
    words = [t for t, _, _ in toks]
    doubts = []
    chosen = list(zip(concepts, picks, strict=True))
    for i, w in enumerate(words):
        if w not in NEGATION or (w == "no" and i + 1 < len(words) and words[i + 1].isdigit()):
            continue
        near = next(((c, e) for c, e in chosen if i < c.start <= i + 3), None)
        applied = near is not None and (
            (near[0].role == "value" and near[0].negate)
            or (near[0].role == "segment" and negates(near[1]))
            or any(f.get("operator") in _NOT_FILTERS for f in query.get("filters", []))
        )
        if not applied:
            phrase = " ".join(words[i : i + 3])
            doubts.append(f"I could not apply '{phrase}': the answer may include what you wanted left out.")
            break
    percent = any(
        w in PERCENT_WORDS and not (i and words[i - 1].replace(".", "").isdigit())
        for i, w in enumerate(words)
    )
    asked = set(query.get("measures", []))
    rates = any(
        getattr(e.target, "format", None) == "percent" for e in (*picks, *index.entries) if e.path in asked
    )
    measures = set(query.get("measures", []))
    grouped = query.get("dimensions") or any("granularity" in t for t in query.get("timeDimensions", []))
    if percent and not rates and not (share and grouped):  # a share of one total row is 100%
        rates_known = ", ".join(rate_titles(index, query)) or "none"
        doubts.append(
            "You asked for a percentage, but the answer gives counts or amounts, not a share. "
            f"Rates the model has: {rates_known}."
        )
    for c, e in chosen[1:]:
        before = words[c.start - 1] if c.start else ""
        filtered_on = any(f.get("member") == e.path for f in query.get("filters", []))
        counted = getattr(e.target, "filters", ())
        if c.role == "measure" and before in FILTER_INTENT and counted and not filtered_on:
            # "revenue for returned orders", "customers who have returned orders": a filter, likely
            doubts.append(
                f"I added '{c.phrase}' as a second measure; if it should narrow the rows instead, ask "
                "with the value or segment it stands for (e.g. 'with status returned')."
            )
            break
    if len(query.get("segments", [])) > 1 and set(words) & {"vs", "versus", "or", "against"}:
        doubts.append("The answer keeps only rows in all of the segments named; to compare them, ask by "
                      "the dimension they belong to.")  # fmt: skip
    fallback = next((e for c, e in chosen if c.phrase == "(count)"), None)
    segmented = any(c.role == "segment" for c in concepts)  # "late deliveries": the segment's rows
    if fallback is not None and not segmented and not index.names(fallback.cube, " ".join(words)):
        doubts.append(f"The question names no measure, so the answer counts {fallback.title.lower()}.")
    if not grouped and any(f.get("member") in measures for f in query.get("filters", [])):
        doubts.append(
            "The threshold is compared with the total of all rows, not with each item: name what to "
            "compare per item (e.g. 'orders with a total over 400k')."
        )
    return doubts


def rate_titles(index: Index, query: dict[str, Any]) -> list[str]:
    """The percent measures of the owners the query reads, by title: what a 'percent' may have meant."""
    owners = {m.split(".", 1)[0] for m in query.get("measures", [])}
    return [
        f"{e.title} ({e.path})" for e in index.entries
        if e.owner in owners and e.kind == "measure" and getattr(e.target, "format", None) == "percent"
    ][:6]  # fmt: skip
