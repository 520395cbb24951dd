"""Normalisation shared by the index and the question: the same function on both sides makes lookups exact."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|[a-z0-9]+(?:'[a-z]+)?|%|&|#|>=|<=|>|<|,")
STOPWORDS = frozenset(
    [
        ",",
        "counting",
        "different",
        "distinct",
        "unique",
        "individual",
        "named",
        "called",
        "a",
        "an",
        "the",
        "of",
        "for",
        "in",
        "on",
        "at",
        "to",
        "by",
        "per",
        "and",
        "or",
        "with",
        "what",
        "whats",
        "what's",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "show",
        "me",
        "give",
        "list",
        "get",
        "tell",
        "how",
        "many",
        "much",
        "do",
        "does",
        "did",
        "i",
        "we",
        "our",
        "my",
        "please",
        "can",
        "could",
        "you",
        "see",
        "display",
        "which",
        "who",
        "where",
        "when",
        "there",
        "their",
        "it",
        "its",
        "that",
        "this",
        "these",
        "those",
        "from",
        "into",
        "as",
        "all",
        "each",
        "every",
        "across",
        "over",
        "split",
        "broken",
        "down",
        "grouped",
        "group",
        "break",
        "out",
        "vs",
        "versus",
        "compared",
        "than",
        "top",
        "bottom",
        "most",
        "least",
        "highest",
        "lowest",
        "best",
        "worst",
        "biggest",
        "largest",
        "smallest",
        "number",
        "count",
        "total",
        "amount",
        "sum",
        "overall",
        "value",
        "values",
        "have",
        "has",
        "had",
        "made",
        "got",
        "want",
        "need",
        "like",
        "let",
        "us",
        "look",
        "find",
        "report",
        "chart",
        "graph",
        "table",
        "trend",
        "along",
        "between",
        "breakdown",
        "plus",
        "also",
        "sorted",
        "ordered",
        "ranked",
        "sort",
        "order",
        "rank",
        "ascending",
        "descending",
        "asc",
        "desc",
        "up",
        "not",
        "without",
        "excluding",
        "outside",
        "except",
        "",
    ]
)


def singular(word: str) -> str:
    """Crude English singular: enough to make 'orders'/'order', 'categories'/'category' meet."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def tokens(text: str) -> list[tuple[str, int, int]]:
    """(token, start, end) over the lower-cased text; '_' and '-' split words, '&' stays a token."""
    lowered = text.lower().replace("_", " ")
    return [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(lowered)]


# Short forms people type, read as the word the model spells out ('%' and 'percent' meet 'pct').
ABBREVIATIONS = {
    "&": "and", "%": "pct", "percent": "pct", "percentage": "pct", "avg": "average", "mean": "average",
    "qty": "quantity", "no": "number", "num": "number", "nr": "number", "amt": "amount", "cnt": "count",
    "yr": "year", "mo": "month", "rev": "revenue", "cust": "customer", "dept": "department",
}  # fmt: skip


def word(token: str) -> str:
    """One token as the index keys it: abbreviations spelled out, then singular."""
    return singular(ABBREVIATIONS.get(token, token))


def norm(text: str) -> str:
    """A phrase as the index keys it: lower-case singular words, abbreviations spelled out."""
    return " ".join(w for w in (word(t) for t, _, _ in tokens(text)) if w != "#")


def humanize(name: str) -> str:
    """'signed_up_at' → 'signed up at' (names are phrases too)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").lower()
