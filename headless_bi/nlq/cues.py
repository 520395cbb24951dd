"""Cue words of a question: ranks ('top 5', 'the worst'), comparators ('over 1,000', 'below 45%'),
sorting and share wording. Each finder marks the tokens it uses, so the member lookup that follows
sees only the words left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from headless_bi.errors import QueryError
from headless_bi.nlq.text import STOPWORDS, singular, tokens
from headless_bi.nlq.timeparse import NUMBER_WORDS

_N = r"(\d{1,3}(?:,\d{3})+|\d+|" + "|".join(k for k in NUMBER_WORDS if k != "a") + r")"
RANK = re.compile(
    r"\b(?<!at )(?P<dir>top|best|highest|largest|biggest|leading|bottom|worst|lowest|smallest|least|most)\s+"
    + _N
    + r"\b"
)
FIRST = re.compile(
    r"\b(?P<dir>most|largest|highest|biggest|best|least|lowest|smallest|fewest|worst)"
    r"(?: first| to (?:largest|highest|most|smallest|lowest|least))\b"
)
WHICH = re.compile(
    r"\b(?:which|what)\b(?P<what>[^?]*?)\b(?:ha[sd]|had|with|sold|made|got|generated|brought|is|was)?\s*"
    r"(?:the\s+)?(?P<dir>most|highest|largest|biggest|best|top|lowest|least|fewest|smallest|worst)\b"
)
SUPERLATIVE = re.compile(
    r"\b(?:the\s+)?(?<!at )(?<!at the )(?P<dir>most|highest|largest|biggest|lowest|least|fewest|smallest|best"
    r"|worst|top|leading|bottom)\b"
)
COMPARATOR = re.compile(
    r"(?P<op>more than|greater than|bigger than|higher than|over|above|at least|exceed(?:s|ed|ing)?|"
    r"less than|fewer than|smaller than|lower than|under|below|at most|>=|<=|>|<)\s*\$?\s*"
    r"(?P<num>\d[\d,]*(?:\.\d+)?|half an?|an?|one|two|three|four|five|six|seven|eight|nine|ten)\s*"
    r"(?:(?P<mult>k|m|bn|thousand|million|billion)\b|(?P<pct>%|percent\b|pct\b))?"
)
SPELLED = {
    "half a": 0.5, "half an": 0.5, "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
OPERATORS = {
    "more than": "gt", "greater than": "gt", "bigger than": "gt", "higher than": "gt", "over": "gt",
    "above": "gt", "exceeding": "gt", ">": "gt", "at least": "gte", ">=": "gte", "less than": "lt",
    "fewer than": "lt", "smaller than": "lt", "lower than": "lt", "under": "lt", "below": "lt",
    "<": "lt", "at most": "lte", "<=": "lte", "exceed": "gt", "exceeds": "gt", "exceeded": "gt",
}  # fmt: skip
SORT = re.compile(r"\b(?:sorted|ordered|ranked|sort|rank)\s+(?:them\s+)?by\b|\bin order of\b")
ASCENDING = re.compile(r"\b(ascending|asc|lowest first|smallest first|increasing)\b")
SHARE = re.compile(
    r"(?:\bshare of total|\bshare of|\bpercentage of|\bpercent of|\bproportion of|%\s*of|\bsplit of"
    r"|\bmix of|\baccount(?:s|ed)? for)\b"
)
ALPHABETICAL = re.compile(
    r"\b(?:sorted |ordered |listed )?(?:alphabetically|in alphabetical order|a to z|a-z)\b"
)
# "ten biggest customers", "5 worst stores": the count before the superlative
RANK_AFTER = re.compile(
    r"\b(?P<n>\d{1,3}(?:,\d{3})+|\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty)"
    r"\s+(?P<dir>biggest|largest|best|top|highest|leading|worst|lowest|smallest|bottom)\b"
)
HAVE = re.compile(r"\b(?:which|what)\s+(?:\w+\s+){1,3}?(?:have|has|had)\b")
COUNT = re.compile(r"\b(how many|number of|count of|# of|count)\b")
NEGATION = frozenset({"not", "excluding", "except", "without", "exclude", "non", "no", "outside"})
# Between a negation and what it negates: "not from the United Kingdom".
NEGATION_FILLER = frozenset({"from", "the", "in", "of", "a", "an", "for", "at", "by", "to"})
DESCENDING_WORDS = {"top", "best", "highest", "largest", "biggest", "leading", "most"}


def consume(toks: list[tuple[str, int, int]], used: list[bool], a: int, b: int) -> None:
    for i, (_, s, e) in enumerate(toks):
        if s < b and e > a:
            used[i] = True


def token_at(toks: list[tuple[str, int, int]], pos: int) -> int:
    return next((i for i, (_, s, e) in enumerate(toks) if s <= pos < e or s >= pos), len(toks))


def rank_count(text: str) -> int:
    """'5', '1,000', 'ten' → the rank's row count; 0 or an absurd count is refused, not ignored."""
    digits = text.replace(",", "")
    n = int(digits) if digits.isdigit() else NUMBER_WORDS[text]
    if not 0 < n <= 1_000_000:
        raise QueryError(
            f"'{text}' rows cannot be ranked: ask for 1 to 1,000,000", member="question", value=text
        )
    return n


@dataclass
class Rank:
    descending: bool
    limit: int | None
    at: int  # token index of the cue


def find_rank(lowered: str, toks: list[tuple[str, int, int]], used: list[bool]) -> Rank | None:
    """'top 5', 'which 3 stores ... lowest', 'the worst category' (one), 'most first' (sort only)."""
    m = RANK.search(lowered)
    if m and is_free(toks, used, m):
        consume(toks, used, m.start(), m.end())
        return Rank(m.group("dir") in DESCENDING_WORDS, rank_count(m.group(2)), token_at(toks, m.start()))
    m = RANK_AFTER.search(lowered)
    if m and is_free(toks, used, m):
        consume(toks, used, m.start(), m.end())
        return Rank(m.group("dir") in DESCENDING_WORDS, rank_count(m.group("n")), token_at(toks, m.start()))
    m = FIRST.search(lowered)
    if m and is_free(toks, used, m):
        consume(toks, used, m.start(), m.end())
        return Rank(m.group("dir") in DESCENDING_WORDS, None, token_at(toks, m.start()))
    m = WHICH.search(lowered)
    if m and is_free(toks, used, m, m.start("dir")):
        consume(toks, used, m.start("dir"), m.end())
        count = re.search(r"\b" + _N + r"\b", m.group("what"))
        limit = rank_count(count.group(1)) if count else (1 if singular_noun(m.group("what")) else None)
        if count:
            consume(toks, used, m.start("what") + count.start(), m.start("what") + count.end())
        return Rank(m.group("dir") in DESCENDING_WORDS, limit, token_at(toks, m.start()))
    m = SUPERLATIVE.search(lowered)
    if m and is_free(toks, used, m):
        consume(toks, used, m.start(), m.end())
        after = lowered[m.end() :]
        return Rank(
            m.group("dir") in DESCENDING_WORDS, 1 if singular_noun(after) else None, token_at(toks, m.start())
        )
    return None


def is_free(
    toks: list[tuple[str, int, int]], used: list[bool], m: re.Match[str], start: int | None = None
) -> bool:
    a = m.start() if start is None else start
    return not any(used[i] for i, (_, s, e) in enumerate(toks) if s < m.end() and e > a)


def singular_noun(text: str) -> bool:
    """Is the first content word of `text` a singular noun ('store' yes, 'stores' no)?"""
    for t, _, _ in tokens(text):
        if t in STOPWORDS or t.isdigit():
            continue
        return singular(t) == t and not t.endswith("s")
    return False


def find_comparators(
    lowered: str, toks: list[tuple[str, int, int]], used: list[bool]
) -> list[tuple[str, float, int, bool]]:
    """(operator, number, token index of the number) for 'over 1000', 'more than 5', '> 2k'."""
    out = []
    for m in COMPARATOR.finditer(lowered):
        if any(used[i] for i, (_, s, e) in enumerate(toks) if s < m.end() and e > m.start()):
            continue
        num = m.group("num")
        if num in SPELLED and not m.group("mult"):
            continue  # "more than a few", "over one": no number without "thousand", "million"
        value = SPELLED[num] if num in SPELLED else float(num.replace(",", ""))
        value *= {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}.get(
            m.group("mult") or "", 1
        )
        if m.group("pct"):
            value /= 100  # percent members hold fractions (0.2 = 20%)
        consume(toks, used, m.start(), m.end())
        out.append((OPERATORS[m.group("op")], value, token_at(toks, m.start("num")), bool(m.group("pct"))))
    return out


def find_sort(lowered: str, toks: list[tuple[str, int, int]], used: list[bool]) -> tuple[int, bool] | None:
    """(token index of what is sorted by, descending); index -1: the first breakdown (alphabetical)."""
    alpha = ALPHABETICAL.search(lowered)
    if alpha:
        consume(toks, used, alpha.start(), alpha.end())
        return -1, False
    m = SORT.search(lowered)
    if not m:
        return None
    consume(toks, used, m.start(), m.end())
    asc = ASCENDING.search(lowered)
    if asc:
        consume(toks, used, asc.start(), asc.end())
    return token_at(toks, m.end()), not asc
