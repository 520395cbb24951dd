"""Time expressions in a question → an absolute date range, a granularity and a comparison range.

Resolved against an injectable `today` so the same question always gives the same query in tests.
Relative periods follow the query layer's convention (headless_bi/semantic/time.py): "last 3 months"
is the three whole months before the current one, "this year" is the whole calendar year, "last
week" is the previous ISO week (Monday to Sunday). "YTD"/"so far this year" ends today.
Ranges are inclusive calendar dates, as Cube's `dateRange: [from, to]` reads them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from headless_bi.errors import QueryError

UNITS = ("day", "week", "month", "quarter", "year")
MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
NUMBER_WORDS = {
    "a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
}  # fmt: skip
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
ADVERBS = {"daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter", "yearly": "year",
           "annually": "year", "annual": "year"}  # fmt: skip

_MONTH = r"(?P<{n}>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<{n}>(?:19|20)\d\d)"
_NUM = r"(?P<n>\d+|" + "|".join(NUMBER_WORDS) + ")"
_UNIT = r"(?P<unit>day|week|month|quarter|year)s?"


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    def as_range(self) -> list[str]:
        return [self.start.isoformat(), self.end.isoformat()]

    def label(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


@dataclass
class TimeSpec:
    """What the question says about time; `spans` are the character ranges it used up."""

    period: Period | None = None
    granularity: str | None = None
    compare_to: Period | None = None
    compare_label: str | None = None
    compare_unit: str | None = None  # "vs last year": year; resolved once the main period is known
    trend: bool = False
    spans: list[tuple[int, int]] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)


def parse_time(text: str, today: date) -> TimeSpec:
    """Find the time expressions of a (lower-cased) question; unknown wording is left alone."""
    text = text.lower()
    spec = TimeSpec()
    taken = [False] * len(text)

    def free(m: re.Match[str]) -> bool:
        return not any(taken[m.start() : m.end()])

    def take(m: re.Match[str]) -> None:
        for i in range(m.start(), m.end()):
            taken[i] = True
        spec.spans.append((m.start(), m.end()))
        spec.phrases.append(m.group(0).strip())

    bad = re.search(r"\b(?:h[03-9]|q[05-9])\s*(?:of\s+)?(?:19|20)\d\d\b", text) or re.search(
        r"\b(?:19|20)\d\d-(?:00|1[3-9]|[2-9]\d)\b", text
    )
    if bad:  # "H3 2025", "2026-13": no such half or month; never read it as the whole year
        raise QueryError(
            f"'{bad.group(0)}' is not a period the calendar has", member="question", value=bad.group(0)
        )
    _comparison(text, spec, free, take)
    for pattern, build in _RULES:
        for m in re.finditer(pattern, text):
            if not free(m):
                continue
            try:
                period = build(m, today)
            except (ValueError, OverflowError) as error:  # "last 99999999 months", "since 31 feb"
                raise QueryError(
                    f"'{m.group(0).strip()}' is not a period the calendar has", member="question",
                    value=m.group(0).strip(),
                ) from error  # fmt: skip
            if period is None:
                continue
            take(m)
            if spec.period is None:
                spec.period = period
            elif spec.compare_to is None and _has_versus(text):
                spec.compare_to = period
                spec.compare_label = m.group(0).strip()
    if spec.compare_to is not None and spec.period is not None and spec.compare_to.start > spec.period.start:
        # "2023 vs 2024": the later period is the one asked about, the earlier the baseline.
        spec.period, spec.compare_to = spec.compare_to, spec.period
    _granularity(text, spec, free, take)
    if spec.compare_unit and spec.compare_unit != "period" and spec.period is None:
        # "revenue vs last year": this year so far against the same days a year earlier
        spec.period = _so_far(today, spec.compare_unit)
    if spec.compare_unit and spec.period is not None and spec.compare_to is None:
        spec.compare_to = shift_back(spec.period, spec.compare_unit)
    if spec.compare_to is not None and spec.period is None:
        spec.compare_to = None
    return spec


def _has_versus(text: str) -> bool:
    return re.search(r"\b(vs\.?|versus|compared? (to|with)|against|and)\b", text) is not None


def _comparison(text: str, spec: TimeSpec, free: Callable, take: Callable) -> None:
    """ "vs last year", "year over year", "compared to the previous period": the baseline's unit."""
    pattern = (
        r"\b(?:(?:vs\.?|versus|compared? (?:to|with)|against)\s+(?:the\s+)?(?:same\s+(?:period|time)\s+)?"
        r"(?:(?:last|previous|prior|a)\s+(?P<what>year|period|month|quarter|week)"
        r"|(?P<what2>year|period|month|quarter|week)\s+(?:before|earlier|prior))"
        r"|(?P<ago>(?:vs\.?\s+|versus\s+|compared?\s+(?:to|with)\s+)?(?:the\s+)?same\s+(?:month|quarter|week|period|day)s?"
        r"\s+(?:a|one|last|the\s+previous)\s+year(?:\s+ago)?)"
        r"|(?P<yoy>year[- ]over[- ]year|yoy|y/y)|(?P<mom>month[- ]over[- ]month|mom))\b"
    )
    for m in re.finditer(pattern, text):
        if m.group("ago") and not _has_versus(text):
            continue  # "orders in the same month a year ago": that month is the period asked about
        if free(m) and spec.compare_unit is None:
            take(m)
            unit = m.group("what") or m.group("what2")
            spec.compare_unit = unit or ("year" if m.group("yoy") or m.group("ago") else "month")
            spec.compare_label = {"period": "the previous period"}.get(
                spec.compare_unit, f"the previous {spec.compare_unit}"
            )


def shift_back(period: Period, unit: str) -> Period:
    """The baseline of a comparison: the same dates a year (month, ...) earlier, or the range before."""
    if unit == "period":
        length = (period.end - period.start).days + 1
        return Period(period.start - timedelta(days=length), period.start - timedelta(days=1))
    if unit == "week":
        return Period(period.start - timedelta(days=7), period.end - timedelta(days=7))
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    start = _add_months(period.start, -months)
    end = _add_months(period.end + timedelta(days=1), -months) - timedelta(days=1)
    return Period(start, end)


def _granularity(text: str, spec: TimeSpec, free: Callable, take: Callable) -> None:
    for m in re.finditer(
        r"\b(?:by|per|each|every|and|,|over|across)\s+(?:the\s+)?(?:calendar\s+)?"
        r"(?P<unit>day|date|week|month|quarter|year)s?\b",
        text,
    ):
        if free(m) and spec.granularity is None:
            take(m)
            spec.granularity = "day" if m.group("unit") == "date" else m.group("unit")
    for m in re.finditer(
        r"^\W*(?:(?:which|what|the|list|show)\s+)*(?P<unit>day|week|month|quarter|year)s\b", text
    ):
        if free(m) and spec.granularity is None:  # "months where revenue exceeded 1M": one row a month
            take(m)
            spec.granularity = m.group("unit")
    for m in re.finditer(r"\b(" + "|".join(ADVERBS) + r")\b", text):
        if re.search(r"\b(?:average|avg|mean)\s+$", text[: m.start()]):
            continue  # "average daily footfall" names a measure, not a granularity
        if free(m) and spec.granularity is None:
            take(m)
            spec.granularity = ADVERBS[m.group(1)]
    for m in re.finditer(r"\b(over time|trend(?:s|ing)?|evolution|develop(?:ed|ment)|time series)\b", text):
        if free(m):
            take(m)
            spec.trend = True


# --- absolute and relative periods -----------------------------------------------------------


def _so_far(today: date, unit: str) -> Period:
    return Period(_unit_period(today, unit).start, today)


def _unit_period(day: date, unit: str) -> Period:
    if unit == "day":
        return Period(day, day)
    if unit == "week":
        start = day - timedelta(days=day.weekday())
        return Period(start, start + timedelta(days=6))
    if unit == "month":
        start = day.replace(day=1)
    elif unit == "quarter":
        start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    else:
        start = date(day.year, 1, 1)
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    return Period(start, _add_months(start, months) - timedelta(days=1))


def _shift(day: date, n: int, unit: str) -> date:
    if unit == "day":
        return day + timedelta(days=n)
    if unit == "week":
        return day + timedelta(weeks=n)
    return _add_months(day, n * {"month": 1, "quarter": 3, "year": 12}[unit])


def _add_months(day: date, n: int) -> date:
    index = day.year * 12 + day.month - 1 + n
    year, month = divmod(index, 12)
    last = (_add_months_first(year, month + 1, 1) - timedelta(days=1)).day
    return date(year, month + 1, min(day.day, last))


def _add_months_first(year: int, month: int, n: int) -> date:
    index = year * 12 + month - 1 + n
    y, m = divmod(index, 12)
    return date(y, m + 1, 1)


def _count(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word]


def _last_n(m: re.Match[str], today: date) -> Period | None:
    n, unit = _count(m.group("n")), m.group("unit")
    if n <= 0:
        return None
    if m.group("incl"):  # "the last 30 days including today": a trailing window up to today
        return Period(_shift(today, -n, unit) + timedelta(days=1), today)
    first = _unit_period(_shift(today, -n, unit), unit)
    last = _unit_period(_shift(today, -1, unit), unit)
    return Period(first.start, last.end)


def _relative(m: re.Match[str], today: date) -> Period:
    offset = {"this": 0, "current": 0, "last": -1, "previous": -1, "past": -1, "prior": -1}[m.group("rel")]
    return _unit_period(_shift(today, offset, m.group("unit")), m.group("unit"))


def _to_date(m: re.Match[str], today: date) -> Period:
    unit = {"ytd": "year", "year": "year", "mtd": "month", "month": "month", "qtd": "quarter",
            "quarter": "quarter", "wtd": "week", "week": "week"}[m.group("u")]  # fmt: skip
    return Period(_unit_period(today, unit).start, today)


def _quarter(m: re.Match[str], today: date) -> Period:
    q = int(m.group("q")) if m.group("q") else ORDINALS[m.group("ord")]
    year = int(m.group("y")) if m.group("y") else today.year
    if not m.group("y") and date(year, 3 * q - 2, 1) > today:
        year -= 1
    return _unit_period(date(year, 3 * q - 2, 1), "quarter")


def _half(m: re.Match[str], today: date) -> Period:
    return _half_period(int(m.group("y")), m.group("h"))


def _half_period(year: int, half: str) -> Period:
    """`half` as written: '1'/'first' or '2'/'second'."""
    start = date(year, 1 if half in ("1", "first") else 7, 1)
    return Period(start, _add_months(start, 6) - timedelta(days=1))


def _month_year(m: re.Match[str], today: date) -> Period:
    return _unit_period(date(int(m.group("y")), MONTHS[m.group("m")], 1), "month")


def _iso_month(m: re.Match[str], today: date) -> Period:
    """'2026-03': March 2026."""
    return _unit_period(date(int(m.group("y")), int(m.group("mm")), 1), "month")


def _month_alone(m: re.Match[str], today: date) -> Period:
    """ "in March": the latest March that has begun."""
    month = MONTHS[m.group("m")]
    year = today.year if month <= today.month else today.year - 1
    return _unit_period(date(year, month, 1), "month")


def _year(m: re.Match[str], today: date) -> Period:
    return _unit_period(date(int(m.group("y")), 1, 1), "year")


def _iso_day(m: re.Match[str], today: date) -> Period | None:
    return Period(date.fromisoformat(m.group("d")), date.fromisoformat(m.group("d")))  # 2026-02-30 raises


def _named_date(m: re.Match[str], today: date) -> Period | None:
    """'14 Aug 2026', 'August 14th, 2026', '14 august' (this year)."""
    year = int(m.group("y")) if m.group("y") else today.year
    day = date(year, MONTHS[m.group("m")], int(m.group("d")))  # "31 feb" raises: not a date
    return Period(day, day)


def _point(text: str, today: date) -> Period | None:
    """A single date-ish phrase as a period (used by since/between)."""
    text = text.strip()
    for pattern, build in _POINTS:
        m = re.fullmatch(pattern, text)
        if m:
            return build(m, today)
    return None


def _since(m: re.Match[str], today: date) -> Period | None:
    start = _point(m.group("p"), today)
    return Period(start.start, today) if start else None


def _between(m: re.Match[str], today: date) -> Period | None:
    a, b = _point(m.group("a"), today), _point(m.group("b"), today)
    if a is None or b is None:
        return None
    if b.end < a.start:  # "between 2026 and 2020": the same span, in calendar order
        a, b = b, a
    return Period(a.start, b.end)


def _part_of_year(m: re.Match[str], today: date) -> Period:
    """'December last year', 'Q4 of last year', 'the first quarter of this year', 'H1 next year'."""
    year = today.year + {"this": 0, "current": 0, "next": 1}.get(m.group("rel"), -1)
    if m.group("m"):
        return _unit_period(date(year, MONTHS[m.group("m")], 1), "month")
    if m.group("q") or m.group("ord"):
        q = int(m.group("q")) if m.group("q") else ORDINALS[m.group("ord")]
        return _unit_period(date(year, 3 * q - 2, 1), "quarter")
    return _half_period(year, m.group("h") or m.group("hw"))


def _same_unit_last_year(m: re.Match[str], today: date) -> Period:
    """'the same month a year ago': this month (quarter, week) one year earlier."""
    return _unit_period(_shift(today, -1, "year"), m.group("unit"))


def _year_of(m: re.Match[str], today: date) -> int:
    """The year written ('2025'), said ('last year'), or this year."""
    if m.group("y"):
        return int(m.group("y"))
    return today.year + {"last": -1, "next": 1}.get(m.group("rel") or "", 0)


def _season(m: re.Match[str], today: date) -> Period:
    """Meteorological seasons of the northern hemisphere; winter 2025 is Dec 2025 to Feb 2026."""
    year = _year_of(m, today)
    start_month = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}[m.group("season")]
    start = date(year, start_month, 1)
    return Period(start, _add_months(start, 3) - timedelta(days=1))


def _holiday(m: re.Match[str], today: date) -> Period:
    """Fixed-date holidays, and Black Friday / Cyber Monday (after the 4th Thursday of November)."""
    year = _year_of(m, today)
    name = m.group("h").replace("'", "")
    fixed = {
        "new years day": (1, 1), "new years eve": (12, 31), "christmas eve": (12, 24), "christmas": (12, 25),
        "christmas day": (12, 25), "boxing day": (12, 26), "valentines day": (2, 14),
    }  # fmt: skip
    if name in fixed:
        day = date(year, *fixed[name])
    else:
        first = date(year, 11, 1)
        thanksgiving = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
        day = thanksgiving + timedelta(days=1 if name == "black friday" else 4)
    return Period(day, day)


def _named_day(m: re.Match[str], today: date) -> Period:
    day = today if m.group(0).strip() == "today" else today - timedelta(days=1)
    return Period(day, day)


_ISO = r"(?P<d>\d{4}-\d{2}-\d{2})"
_POINTS = [
    (_ISO, _iso_day),
    (r"(?P<y>(?:19|20)\d\d)-(?P<mm>0[1-9]|1[0-2])", _iso_month),
    (
        _MONTH.format(n="m") + r"\s+(?P<d>[0-3]?\d)(?:st|nd|rd|th)?(?:,?\s+" + _YEAR.format(n="y") + r")?",
        _named_date,
    ),
    (
        r"(?P<d>[0-3]?\d)(?:st|nd|rd|th)?\s+(?:of\s+)?"
        + _MONTH.format(n="m")
        + r"(?:,?\s+"
        + _YEAR.format(n="y")
        + r")?",
        _named_date,
    ),
    (_MONTH.format(n="m") + r"\s+(?:of\s+)?" + _YEAR.format(n="y"), _month_year),
    (r"q(?P<q>[1-4])\s*" + _YEAR.format(n="y"), lambda m, t: _quarter(_Q(m), t)),
    (_YEAR.format(n="y"), _year),
    (_MONTH.format(n="m"), _month_alone),
]


class _Q:
    """Adapts a point match to `_quarter`'s group names."""

    def __init__(self, m: re.Match[str]):
        self.m = m

    def group(self, name: str) -> str | None:
        return {"q": self.m.group("q"), "y": self.m.group("y"), "ord": None}.get(name)


_POINT = (
    r"(?:\d{4}-\d{2}-\d{2}|\d{4}-\d{2}|[a-z]+\.?\s+[0-3]?\d(?:st|nd|rd|th)?(?:,?\s+\d{4})?"
    r"|[0-3]?\d(?:st|nd|rd|th)?\s+[a-z]+(?:,?\s+\d{4})?|[a-z]+\.?\s+(?:of\s+)?\d{4}|q[1-4]\s*\d{4}|\d{4}|[a-z]+)"
)
_REL_YEAR = r"(?P<rel>this|current|last|previous|prior|next) year\b"

_RULES = [
    (rf"\b(?:between|from)\s+(?P<a>{_POINT})\s+(?:and|to|until|till|through|-)\s+"
     rf"(?P<b>{_POINT})\b", _between),
    (rf"\b(?:since|from|after|starting(?: in| from)?)\s+(?P<p>{_POINT})\b", _since),
    (r"\b(?P<u>ytd|mtd|qtd|wtd)\b", _to_date),
    (r"\b(?:so far )?this (?P<u>year|month|quarter|week) (?:so far|to date)\b", _to_date),
    (r"\b(?P<u>year|month|quarter|week)[- ]to[- ]date\b", _to_date),
    (r"\bso far this (?P<u>year|month|quarter|week)\b", _to_date),
    (rf"\b(?:in |over |during |for )?(?:the )?(?:last|past|previous|trailing|prior) {_NUM} {_UNIT}"
     r"(?P<incl> including today)?\b", _last_n),
    (r"\b(?:on )?(?P<h>new year'?s day|new year'?s eve|christmas eve|christmas(?: day)?|boxing day"
     r"|black friday|cyber monday|valentine'?s day)(?:\s+(?:of\s+)?" + _YEAR.format(n="y")
     + r"|\s+(?P<rel>last|this|next) year)?\b", _holiday),
    (r"\b(?:in |over |during |for |the )*(?P<season>spring|summer|autumn|fall|winter)(?:\s+(?:of\s+)?"
     + _YEAR.format(n="y") + r"|\s+(?P<rel>last|this|next) year)?\b", _season),
    # a month, quarter or half of a year said relatively: "December last year", "Q2 of this year"
    (r"\b(?:in |for |during )?(?:the )?(?:" + _MONTH.format(n="m") + r"|q(?P<q>[1-4])"
     r"|(?P<ord>first|second|third|fourth|1st|2nd|3rd|4th) quarter|h(?P<h>[12])|(?P<hw>first|second) half)"
     r"\s+(?:of\s+)?(?:the\s+)?" + _REL_YEAR, _part_of_year),
    (r"\b(?:in |for |during )?(?:the )?same (?P<unit>week|month|quarter) (?:a year ago|last year)\b",
     _same_unit_last_year),
    (r"\b(?:in |during |for |over )?(?:the )?(?P<rel>this|current|last|previous|past|prior) "
     r"(?P<unit>day|week|month|quarter|year)\b", _relative),
    (r"\b(?:today|yesterday)\b", _named_day),
    (r"\b(?:in |for |during )?(?:q(?P<q>[1-4])\s*(?:of\s+)?(?:" + _YEAR.format(n="y") + r")?"
     r"|(?P<ord>first|second|third|fourth|1st|2nd|3rd|4th) quarter(?: of)?(?: "
     + _YEAR.format(n="y2") + r")?)\b",
     lambda m, t: _quarter(_QQ(m), t)),
    (r"\b" + _YEAR.format(n="y") + r"\s*q(?P<q>[1-4])\b", lambda m, t: _quarter(_QQ(m), t)),
    (r"\b(?:in |for |during )?(?:h(?P<h>[12])|(?P<hw>first|second) half(?: of)?)\s*"
     + _YEAR.format(n="y") + r"\b",
     lambda m, t: _half(_H(m), t)),
    (r"\b(?:in |for |during |of )?" + _ISO + r"\b", _iso_day),
    (r"\b(?:in |for |during |of )?(?P<y>(?:19|20)\d\d)-(?P<mm>0[1-9]|1[0-2])\b(?!-\d)", _iso_month),
    (r"\b(?:on )?(?P<d>[0-3]?\d)(?:st|nd|rd|th)? (?:of )?" + _MONTH.format(n="m") + r",?(?: "
     + _YEAR.format(n="y") + r")?\b", _named_date),
    (r"\b(?:on )?" + _MONTH.format(n="m") + r" (?P<d>[0-3]?\d)(?:st|nd|rd|th)?(?:,? "
     + _YEAR.format(n="y") + r")?\b", _named_date),
    (r"\b(?:in |for |during )?" + _MONTH.format(n="m") + r"\s+(?:of\s+)?" + _YEAR.format(n="y") + r"\b",
     _month_year),
    (r"\b(?:in|during|for|of|since) " + _MONTH.format(n="m") + r"\b", _month_alone),
    (r"\b(?:in |for |during |of )?(?:the year )?" + _YEAR.format(n="y") + r"\b", _year),
    # a month alone, compared with another: "March vs February"
    (r"\b" + _MONTH.format(n="m") + r"(?=\s+(?:vs\.?|versus|against|compared\s+(?:to|with))\s)",
     _month_alone),
    (r"(?:(?<=\bvs )|(?<=\bvs\. )|(?<=versus )|(?<=against ))" + _MONTH.format(n="m") + r"\b", _month_alone),
]  # fmt: skip


class _QQ:
    def __init__(self, m: re.Match[str]):
        self.m = m

    def group(self, name: str) -> str | None:
        d = self.m.groupdict()
        if name == "y":
            return d.get("y") or d.get("y2")
        return d.get(name)


class _H:
    def __init__(self, m: re.Match[str]):
        self.m = m

    def group(self, name: str) -> str | None:
        if name == "h":
            return self.m.group("h") or self.m.group("hw")
        return self.m.group(name)
