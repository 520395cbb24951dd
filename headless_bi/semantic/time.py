"""Granularities, time zones and Cube ``dateRange`` values resolved to local wall-clock ranges (no SQL).

Relative strings mirror Cube's ``dateParser`` in cube-js/cube
``packages/cubejs-api-gateway/src/date-parser.ts`` (and its tests ``test/date-parser.test.ts``); absolute
values mirror ``resolveDateRange`` and ``normalizeDateFilterValues`` in ``.../src/query.ts``:

* ``today`` / ``yesterday`` / ``tomorrow``: that local day.
* ``this|last|next <unit>``: the unit containing now, shifted by 0/-1/+1 units. Weeks are ISO weeks starting
  Monday (moment ``isoWeek``).
* ``last N <units>``: the N whole units *before* the current one ("last 7 days" ends where today starts);
  ``next N <units>``: the N whole units *after* the current one. Units: second ... year.
* ``from X to Y``: X rounded down and Y rounded up to a granularity inferred the way Cube does it: "second",
  "minute" or "hour" if the text mentions one, else day. X and Y are dates or timestamps, ``now``,
  ``today``/``yesterday``/``tomorrow``, ``N <units> ago``, ``N <units> from now``, ``in N <units>``,
  ``last|past|next [N] <units>`` (a point in time, like chrono-node reads it).
* Any other string is one such point widened to that granularity: "2024-05-01" is that day, and so is
  "2024-05-01T10:00" (no unit word); "2 weeks ago by hour" is one hour.
* ``[start, end]`` (or ``[date]``): bare dates cover whole days; a timestamp end is inclusive to the precision
  written (see :func:`resolve_date_range`). A one-element list holding a relative string is resolved as that
  string (Cube's filter ``values: ["last 2 weeks"]``).

Deliberate differences from Cube:

* Patterns are anchored. Cube's are not, so in Cube "from yesterday to today" means "today" and
  "from last 360 days to now" means "last 360 days"; here they mean what they say.
* ``now`` is injected everywhere (Cube's moment.tz() calls read the wall clock outside ``from ... to``).
* Only the grammar above is accepted, not all of chrono-node's English ("next friday", "March 5"); the rest
  is a QueryError rather than a guess. "last 0 days" is an error (Cube returns an inverted range).
* Ranges are half-open: Cube's inclusive ``...T23:59:59.999`` is our next day's 00:00, exclusive.
* A ``Z`` or offset on an absolute value is converted to the query zone (Cube converts it to UTC and then
  reads that as query-zone wall clock).
* Shifts by hours/minutes/seconds are real elapsed time, shifts by days and up keep the wall-clock time (as
  moment's ``add`` does), so "last hour" just after a DST jump covers the hour that really elapsed.

Everything returned is a naive wall-clock datetime in the query zone; :func:`local_to_utc` makes instants.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_offset
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from headless_bi.errors import QueryError, did_you_mean

GRANULARITIES = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
_SUB_DAY = ("second", "minute", "hour")
_MONTHS = {"month": 1, "quarter": 3, "year": 12}

ACCEPTED_FORMS = (
    "['2024-01-01', '2024-03-31'], '2024-05-01', 'today', 'yesterday', 'this|last|next week', "
    "'last 7 days', 'next 3 months', 'from 7 days ago to now' or 'from 2024-01-01 to 2024-03-31'"
)

_UNIT = r"(second|minute|hour|day|week|month|quarter|year)s?"
_DIGITS = r"[0-9]{1,6}"
_NUM = f"({_DIGITS})"
_ABSOLUTE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[t ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII | re.IGNORECASE,
)
_DAY_WORDS = {"now": 0, "today": 0, "yesterday": -1, "tomorrow": 1}
_PERIOD = re.compile(rf"(this|last|next) {_UNIT}", re.ASCII)
_COUNT = re.compile(rf"(last|next) {_NUM} {_UNIT}", re.ASCII)
_AGO = re.compile(rf"({_DIGITS}|an?|one) {_UNIT} (ago|from now)", re.ASCII)
_IN = re.compile(rf"in ({_DIGITS}|an?|one) {_UNIT}", re.ASCII)
_RELATIVE_POINT = re.compile(rf"(this|last|past|next)(?: {_NUM})? {_UNIT}", re.ASCII)
_FROM_TO = re.compile(r"(?:from )?(.+?) to (.+)")
_BY = re.compile(rf"(.+) by {_UNIT}", re.ASCII)
_SIGN = {"this": 0, "last": -1, "past": -1, "next": 1}


@dataclass(frozen=True)
class DateRange:
    """Half-open [start, end) of naive wall-clock datetimes in the query time zone."""

    start: datetime
    end: datetime

    def to_utc(self, timezone: str) -> tuple[datetime, datetime]:
        """Both bounds as naive UTC (see :func:`local_to_utc` for DST gaps and overlaps)."""
        return local_to_utc(self.start, timezone), local_to_utc(self.end, timezone)


# --- validation ------------------------------------------------------------------------------------------


def check_granularity(value: object, member: str) -> str:
    """The granularity in lower case; case-insensitive because Cube clients disagree on case."""
    name = value.lower() if isinstance(value, str) else None
    if name in GRANULARITIES:
        return name
    hint = did_you_mean(name, GRANULARITIES) if name else ""
    raise QueryError(
        f"{member}: granularity {_show(value)} is not one of {', '.join(GRANULARITIES)}.{hint}",
        member=member,
        value=value,
    )


def check_timezone(tz: object) -> str:
    """The IANA name, canonically spelt ('utc' -> 'UTC'); a QueryError for anything zoneinfo cannot load."""
    if isinstance(tz, str) and tz:
        # Only names of the IANA list: zoneinfo would also open 'posixrules' or 'right/UTC' files.
        canonical = _zone_names().get(tz.lower())
        if canonical:
            return canonical
    hint = did_you_mean(tz, _zone_names().values()) if isinstance(tz, str) else ""
    raise QueryError(f"timezone {_show(tz)} is not a known IANA time zone.{hint}", value=tz)


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(check_timezone(tz))


# --- local <-> UTC ---------------------------------------------------------------------------------------


def local_to_utc(dt: datetime, timezone: str) -> datetime:
    """Naive local wall clock -> naive UTC.

    An ambiguous time (DST fall-back) takes the occurrence its ``fold`` names: 0 (the first) unless it
    came from a UTC instant in the second one, which ``_to_local`` marks with fold=1. A nonexistent time
    (spring-forward gap, e.g. 02:30 in New York on 2024-03-10) maps to the first instant after it, the
    transition itself (03:00 EDT), so a range bound inside a gap neither loses nor gains real time. An
    aware ``dt`` is just converted.
    """
    if dt.tzinfo is not None:
        return dt.astimezone(UTC).replace(tzinfo=None)
    zone = _zone(timezone)
    utc = dt.replace(tzinfo=zone).astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != dt:  # in a gap: fold=0 used the pre-gap offset
        utc = _transition(dt.replace(tzinfo=zone, fold=1).astimezone(UTC), utc, zone)
    return utc.replace(tzinfo=None)


def _transition(lo: datetime, hi: datetime, zone: ZoneInfo) -> datetime:
    """First whole-second UTC instant in (lo, hi] with hi's offset; zoneinfo has no public transition list."""
    target = hi.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)  # transitions fall on whole seconds


def _to_local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


# --- absolute values -------------------------------------------------------------------------------------


def parse_timestamp_value(
    value: object, *, timezone: str, member: str, field: str = "filter value"
) -> datetime:
    """A date or timestamp filter value (beforeDate, afterDate, ...) as naive wall clock in the query zone."""
    zone = _zone(timezone)
    match = _ABSOLUTE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise QueryError(
            f"{member}: {field} {_show(value)} is not a date or timestamp; use 'YYYY-MM-DD' or "
            f"'YYYY-MM-DDTHH:MM[:SS[.ffffff]]' with an optional 'Z' or '+HH:MM'",
            member=member,
            value=value,
        )
    return _absolute(match, zone, member, field, value)[0]


def _absolute(
    m: re.Match[str], zone: ZoneInfo, member: str, field: str, value: object
) -> tuple[datetime, timedelta]:
    """The local datetime and the precision it was written to (a day, minute, second or fraction)."""
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    try:
        dt = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
        if offset:
            dt = _to_local(dt.replace(tzinfo=_offset(offset)), zone)
    except (ValueError, OverflowError) as exc:
        raise QueryError(
            f"{member}: {field} {_show(value)} has an invalid date or time: {m[0]!r} ({exc})",
            member=member,
            value=value,
        ) from None
    if hour is None:
        return dt, timedelta(days=1)
    if second is None:
        return dt, timedelta(minutes=1)
    return dt, timedelta(microseconds=10 ** (6 - len(fraction or "")))


def _offset(text: str) -> fixed_offset:
    if text.lower() == "z":
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if minutes > 59:
        raise ValueError(f"offset minutes {minutes} > 59")
    delta = timedelta(hours=hours, minutes=minutes)
    return fixed_offset(-delta if text[0] == "-" else delta)


# --- date ranges -----------------------------------------------------------------------------------------


def resolve_date_range(
    value: object, *, timezone: str, now: datetime, member: str, field: str = "dateRange"
) -> DateRange:
    """Resolve a Cube ``dateRange`` / ``inDateRange`` value against ``now`` (naive means UTC).

    For ``[start, end]`` the end is inclusive to the precision written, made exclusive by adding that unit:
    '2024-03-31' -> < 2024-04-01, '...T12:30' -> < 12:31, '...T12:30:00' -> < 12:30:01,
    '...T12:30:00.000' -> < 12:30:00.001 (the last is exactly Cube's millisecond-inclusive end).
    """
    zone = _zone(timezone)
    now_utc = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    is_pair = isinstance(value, list | tuple) and len(value) in (1, 2)
    if not isinstance(value, str) and not (is_pair and all(isinstance(v, str) for v in value)):
        raise _bad(member, field, value, "is not a date range")
    try:
        if isinstance(value, str):
            resolved = _relative(value, now_utc, zone, member, field)
        elif len(value) == 1 and not _ABSOLUTE.fullmatch(value[0].strip()):
            resolved = _relative(value[0], now_utc, zone, member, field)
        else:
            resolved = _absolute_range(value, zone, member, field)
        resolved.to_utc(timezone)  # so callers can always convert what they get
    except (ValueError, OverflowError):
        raise _bad(member, field, value, "reaches outside years 1-9999") from None
    return resolved


def _absolute_range(value: list[str] | tuple[str, ...], zone: ZoneInfo, member: str, field: str) -> DateRange:
    bounds = [_ABSOLUTE.fullmatch(v.strip()) for v in value]
    if not all(bounds):
        raise _bad(member, field, value, "mixes absolute and relative dates or is not a date range")
    start, _ = _absolute(bounds[0], zone, member, field, value)
    end, precision = _absolute(bounds[-1], zone, member, field, value)
    if end + precision <= start:
        raise _bad(member, field, value, "ends before it starts")
    return DateRange(start, end + precision)


def _relative(text: str, now: datetime, zone: ZoneInfo, member: str, field: str) -> DateRange:
    phrase = " ".join(text.lower().split())
    if phrase in ("today", "yesterday", "tomorrow"):
        return _period(_shift(now, zone, _DAY_WORDS[phrase], "day"), "day")
    if m := _PERIOD.fullmatch(phrase):
        return _period(_shift(now, zone, _SIGN[m[1]], m[2]), m[2])
    if m := _COUNT.fullmatch(phrase):
        n, unit = int(m[2]), m[3]
        if n < 1:
            raise _bad(member, field, text, f"asks for {n} {unit}s; N must be at least 1")
        first, last = (-n, -1) if m[1] == "last" else (1, n)
        return DateRange(
            _floor(_shift(now, zone, first, unit), unit), _period(_shift(now, zone, last, unit), unit).end
        )
    unit = next((g for g in _SUB_DAY if g in phrase), "day")  # Cube's "exactGranularity"
    if m := _BY.fullmatch(phrase):
        phrase = m[1]
    if m := _FROM_TO.fullmatch(phrase):
        start, end = (_point_or_fail(part, now, zone, member, field, text) for part in (m[1], m[2]))
        if _floor(start, unit) > _floor(end, unit):
            raise _bad(member, field, text, "ends before it starts")
        return DateRange(_floor(start, unit), _period(end, unit).end)
    return _period(_point_or_fail(phrase, now, zone, member, field, text), unit)


def _point_or_fail(part: str, now: datetime, zone: ZoneInfo, member: str, field: str, text: str) -> datetime:
    point = _point(part, now, zone, lambda m: _absolute(m, zone, member, field, text)[0])
    if point is None:
        what = "is not a date range" if part == " ".join(text.lower().split()) else f"has no date in {part!r}"
        raise _bad(member, field, text, what)
    return point


def _point(
    part: str, now: datetime, zone: ZoneInfo, absolute: Callable[[re.Match[str]], datetime]
) -> datetime | None:
    """One instant as Cube's chrono-node reads it (the subset documented above), or None."""
    if m := _ABSOLUTE.fullmatch(part):
        return absolute(m)
    if part in _DAY_WORDS:
        return _shift(now, zone, _DAY_WORDS[part], "day")
    if m := _AGO.fullmatch(part):
        return _shift(now, zone, _count(m[1]) * (-1 if m[3] == "ago" else 1), m[2])
    if m := _IN.fullmatch(part):
        return _shift(now, zone, _count(m[1]), m[2])
    if m := _RELATIVE_POINT.fullmatch(part):
        return _shift(now, zone, _SIGN[m[1]] * int(m[2] or 1), m[3])
    return None


def _count(word: str) -> int:
    return 1 if word in ("a", "an", "one") else int(word)


def _shift(now: datetime, zone: ZoneInfo, n: int, unit: str) -> datetime:
    """Local wall clock ``n`` units from now: elapsed time below a day, calendar arithmetic above (moment)."""
    if unit in _SUB_DAY:
        return _to_local(now + timedelta(**{f"{unit}s": n}), zone)
    return _add(_to_local(now, zone), n, unit)


def _add(dt: datetime, n: int, unit: str) -> datetime:
    """Wall-clock arithmetic; months clamp to the month's last day like moment and chrono do."""
    if unit in _MONTHS:
        years, month0 = divmod(dt.month - 1 + n * _MONTHS[unit], 12)
        year, month = dt.year + years, month0 + 1
        return dt.replace(year=year, month=month, day=min(dt.day, calendar.monthrange(year, month)[1]))
    return dt + timedelta(**{f"{unit}s": n})


def _floor(dt: datetime, unit: str) -> datetime:
    """Start of the unit containing ``dt`` (moment ``startOf``; weeks start Monday as ``isoWeek``)."""
    if unit == "second":
        return dt.replace(microsecond=0)
    if unit == "minute":
        return dt.replace(second=0, microsecond=0)
    if unit == "hour":
        return dt.replace(minute=0, second=0, microsecond=0)
    day = datetime(dt.year, dt.month, dt.day)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=dt.weekday())
    month = 1 if unit == "year" else dt.month - (dt.month - 1) % (3 if unit == "quarter" else 1)
    return datetime(dt.year, month, 1)


def buckets(date_range: DateRange, granularity: str, limit: int) -> list[DateRange] | None:
    """The granularity's buckets overlapping `date_range` (wall clock), or None if more than `limit`."""
    out = []
    start = _floor(date_range.start, granularity)
    while start < date_range.end:
        if len(out) >= limit:
            return None
        end = _add(start, 1, granularity)
        out.append(DateRange(start, end))
        start = end
    return out


def _period(dt: datetime, unit: str) -> DateRange:
    start = _floor(dt, unit)
    return DateRange(start, _add(start, 1, unit))


def _bad(member: str, field: str, value: object, reason: str) -> QueryError:
    return QueryError(
        f"{member}: {field} {_show(value)} {reason}; use {ACCEPTED_FORMS}", member=member, value=value
    )


def _show(value: object) -> str:
    text = f"'{value}'" if isinstance(value, str) else repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
