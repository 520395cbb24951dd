"""Date ranges, time zones and granularities; expected values follow Cube's date-parser tests (see module)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headless_bi.errors import QueryError
from headless_bi.semantic.time import (
    GRANULARITIES,
    DateRange,
    check_granularity,
    check_timezone,
    local_to_utc,
    parse_timestamp_value,
    resolve_date_range,
)

MEMBER = "orders.created_at"
WEDNESDAY = datetime(2024, 5, 15, 14, 30, 15)  # naive = UTC
D = datetime


def resolve(value, now=WEDNESDAY, tz="UTC"):
    return resolve_date_range(value, timezone=tz, now=now, member=MEMBER)


def rng(start, end):
    return DateRange(start, end)


# --- absolute ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (["2024-01-01", "2024-03-31"], rng(D(2024, 1, 1), D(2024, 4, 1))),
    (("2024-01-01", "2024-01-01"), rng(D(2024, 1, 1), D(2024, 1, 2))),
    (["2024-05-01"], rng(D(2024, 5, 1), D(2024, 5, 2))),
    ("2024-05-01", rng(D(2024, 5, 1), D(2024, 5, 2))),
    # end inclusive to the precision written, made exclusive by adding that unit
    (["2024-01-01T10:00:00", "2024-01-01T12:30:00.000"],
     rng(D(2024, 1, 1, 10), D(2024, 1, 1, 12, 30, 0, 1000))),
    (["2024-01-01T10:00:00", "2024-01-01T12:30:00"], rng(D(2024, 1, 1, 10), D(2024, 1, 1, 12, 30, 1))),
    (["2024-01-01 10:00", "2024-01-01 12:30"], rng(D(2024, 1, 1, 10), D(2024, 1, 1, 12, 31))),
    (["2024-01-01", "2024-01-01T12:30:00.123456"], rng(D(2024, 1, 1), D(2024, 1, 1, 12, 30, 0, 123457))),
    # a single timestamp string is widened to its day, as Cube's dateParser does
    ("2024-05-01T10:00:00", rng(D(2024, 5, 1), D(2024, 5, 2))),
])
def test_absolute_ranges(value, expected):
    assert resolve(value) == expected


def test_absolute_offsets_are_converted_to_the_query_zone():
    got = resolve(["2024-01-01T10:00:00Z", "2024-01-01T12:00:00+02:00"], tz="Europe/Berlin")
    assert got == rng(D(2024, 1, 1, 11), D(2024, 1, 1, 11, 0, 1))
    assert got.to_utc("Europe/Berlin") == (D(2024, 1, 1, 10), D(2024, 1, 1, 10, 0, 1))


# --- relative ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("today", rng(D(2024, 5, 15), D(2024, 5, 16))),
    ("Yesterday", rng(D(2024, 5, 14), D(2024, 5, 15))),
    ("tomorrow", rng(D(2024, 5, 16), D(2024, 5, 17))),
    ("this week", rng(D(2024, 5, 13), D(2024, 5, 20))),  # ISO week: Monday
    ("last week", rng(D(2024, 5, 6), D(2024, 5, 13))),
    ("next  week", rng(D(2024, 5, 20), D(2024, 5, 27))),
    ("this month", rng(D(2024, 5, 1), D(2024, 6, 1))),
    ("last month", rng(D(2024, 4, 1), D(2024, 5, 1))),
    ("next month", rng(D(2024, 6, 1), D(2024, 7, 1))),
    ("this quarter", rng(D(2024, 4, 1), D(2024, 7, 1))),
    ("last quarter", rng(D(2024, 1, 1), D(2024, 4, 1))),
    ("next quarter", rng(D(2024, 7, 1), D(2024, 10, 1))),
    ("this year", rng(D(2024, 1, 1), D(2025, 1, 1))),
    ("last year", rng(D(2023, 1, 1), D(2024, 1, 1))),
    ("next year", rng(D(2025, 1, 1), D(2026, 1, 1))),
    ("this hour", rng(D(2024, 5, 15, 14), D(2024, 5, 15, 15))),
    ("last 7 days", rng(D(2024, 5, 8), D(2024, 5, 15))),  # today excluded
    ("last 1 day", rng(D(2024, 5, 14), D(2024, 5, 15))),
    ("next 5 days", rng(D(2024, 5, 16), D(2024, 5, 21))),  # today excluded
    ("last 2 weeks", rng(D(2024, 4, 29), D(2024, 5, 13))),
    ("next 2 weeks", rng(D(2024, 5, 20), D(2024, 6, 3))),
    ("last 3 months", rng(D(2024, 2, 1), D(2024, 5, 1))),
    ("next 2 quarters", rng(D(2024, 7, 1), D(2025, 1, 1))),
    ("last 2 years", rng(D(2022, 1, 1), D(2024, 1, 1))),
    ("last 6 hours", rng(D(2024, 5, 15, 8), D(2024, 5, 15, 14))),
    ("last 30 minutes", rng(D(2024, 5, 15, 14), D(2024, 5, 15, 14, 30))),
    ("next 10 seconds", rng(D(2024, 5, 15, 14, 30, 16), D(2024, 5, 15, 14, 30, 26))),
    ("from 7 days ago to now", rng(D(2024, 5, 8), D(2024, 5, 16))),
    ("from 7 days ago to 7 days from now", rng(D(2024, 5, 8), D(2024, 5, 23))),
    ("from 1 days ago to now", rng(D(2024, 5, 14), D(2024, 5, 16))),
    ("from 2024-01-01 to 2024-03-31", rng(D(2024, 1, 1), D(2024, 4, 1))),
    ("2024-01-01 to 2024-01-31", rng(D(2024, 1, 1), D(2024, 2, 1))),
    ("from 23 hours ago to now", rng(D(2024, 5, 14, 15), D(2024, 5, 15, 15))),
    ("from now to 23 hours from now", rng(D(2024, 5, 15, 14), D(2024, 5, 16, 14))),
    ("from yesterday to tomorrow", rng(D(2024, 5, 14), D(2024, 5, 17))),
    ("from last 360 days to now", rng(D(2023, 5, 21), D(2024, 5, 16))),
    ("from a week ago to today", rng(D(2024, 5, 8), D(2024, 5, 16))),
    ("from 2024-05-01 to in 2 days", rng(D(2024, 5, 1), D(2024, 5, 18))),
    ("now", rng(D(2024, 5, 15), D(2024, 5, 16))),
    ("3 days ago", rng(D(2024, 5, 12), D(2024, 5, 13))),
    ("2 weeks ago by hour", rng(D(2024, 5, 1, 14), D(2024, 5, 1, 15))),
])
def test_relative_ranges(value, expected):
    assert resolve(value) == expected


@pytest.mark.parametrize(("value", "now", "tz", "expected"), [
    # the cases of cube-js/cube packages/cubejs-api-gateway/test/date-parser.test.ts
    ("from 1 hour ago to now", D(2020, 9, 22, 13, 3, 20, 518000), "America/Los_Angeles",
     rng(D(2020, 9, 22, 5), D(2020, 9, 22, 7))),
    ("from 1 quarter ago to now", D(2021, 5, 3, 12), "UTC", rng(D(2021, 2, 3), D(2021, 5, 4))),
    ("last 2 quarters", D(2021, 2, 15, 13), "UTC", rng(D(2020, 7, 1), D(2021, 1, 1))),
    ("last 6 months", D(2021, 2, 15, 13), "UTC", rng(D(2020, 8, 1), D(2021, 2, 1))),
    ("last 6 months", D(2021, 3, 31, 13), "UTC", rng(D(2020, 9, 1), D(2021, 3, 1))),
    ("next 6 months", D(2021, 2, 20, 13), "UTC", rng(D(2021, 3, 1), D(2021, 9, 1))),
    ("next month", D(2021, 3, 5, 13), "UTC", rng(D(2021, 4, 1), D(2021, 5, 1))),
    ("next 5 days", D(2021, 3, 5, 13), "UTC", rng(D(2021, 3, 6), D(2021, 3, 11))),
    ("2 weeks ago by hour", D(2021, 3, 5, 13), "UTC", rng(D(2021, 2, 19, 13), D(2021, 2, 19, 14))),
])
def test_cube_date_parser_cases(value, now, tz, expected):
    assert resolve(value, now=now, tz=tz) == expected


def test_now_may_be_aware_and_the_zone_decides_the_local_day():
    aware = datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
    # Tokyo is already in 2025; New York is still in 2024
    assert resolve("today", now=aware, tz="Asia/Tokyo") == rng(D(2025, 1, 1), D(2025, 1, 2))
    assert resolve("this year", now=aware, tz="Asia/Tokyo") == rng(D(2025, 1, 1), D(2026, 1, 1))
    assert resolve("last year", now=aware, tz="Asia/Tokyo") == rng(D(2024, 1, 1), D(2025, 1, 1))
    assert resolve("today", now=aware, tz="America/New_York") == rng(D(2024, 12, 31), D(2025, 1, 1))
    assert resolve("next year", now=aware, tz="America/New_York") == rng(D(2025, 1, 1), D(2026, 1, 1))


def test_year_boundary():
    new_years_eve = D(2024, 12, 31, 12)  # a Tuesday
    assert resolve("this week", now=new_years_eve) == rng(D(2024, 12, 30), D(2025, 1, 6))
    assert resolve("next month", now=new_years_eve) == rng(D(2025, 1, 1), D(2025, 2, 1))
    assert resolve("next 2 days", now=new_years_eve) == rng(D(2025, 1, 1), D(2025, 1, 3))
    assert resolve("last 4 quarters", now=D(2025, 1, 1)) == rng(D(2024, 1, 1), D(2025, 1, 1))


def test_sunday_belongs_to_the_week_that_started_on_monday():
    sunday = D(2024, 5, 19, 12)
    assert resolve("this week", now=sunday) == rng(D(2024, 5, 13), D(2024, 5, 20))
    assert resolve("last week", now=sunday) == rng(D(2024, 5, 6), D(2024, 5, 13))
    assert resolve("next week", now=sunday) == rng(D(2024, 5, 20), D(2024, 5, 27))


# --- DST -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tz", "now", "hours"), [
    ("America/New_York", D(2024, 3, 10, 15), 23),
    ("America/New_York", D(2024, 11, 3, 15), 25),
    ("Europe/Berlin", D(2024, 3, 31, 12), 23),
    ("Europe/Berlin", D(2024, 10, 27, 12), 25),
    ("America/Santiago", D(2024, 9, 8, 15), 23),  # the gap is at midnight: the day starts at 01:00
    ("America/New_York", D(2024, 5, 15, 15), 24),
])
def test_today_on_dst_days(tz, now, hours):
    start, end = resolve("today", now=now, tz=tz).to_utc(tz)
    assert end - start == timedelta(hours=hours)


def test_today_in_new_york_on_spring_forward_day():
    today = resolve("today", now=D(2024, 3, 10, 15), tz="America/New_York")
    assert today == rng(D(2024, 3, 10), D(2024, 3, 11))
    assert today.to_utc("America/New_York") == (D(2024, 3, 10, 5), D(2024, 3, 11, 4))


def test_sub_day_shifts_are_elapsed_time_across_a_dst_jump():
    # 07:30 UTC is 03:30 EDT, just after the jump; the hour that elapsed began at 01:30 EST
    last_hour = resolve("last hour", now=D(2024, 3, 10, 7, 30), tz="America/New_York")
    assert last_hour == rng(D(2024, 3, 10, 1), D(2024, 3, 10, 2))
    assert last_hour.to_utc("America/New_York") == (D(2024, 3, 10, 6), D(2024, 3, 10, 7))


@pytest.mark.parametrize(("local", "tz", "utc"), [
    (D(2024, 5, 15), "America/New_York", D(2024, 5, 15, 4)),
    (D(2024, 1, 15, 9, 30), "Europe/Berlin", D(2024, 1, 15, 8, 30)),
    # nonexistent (spring forward): the first instant after, i.e. the transition
    (D(2024, 3, 10, 2, 30), "America/New_York", D(2024, 3, 10, 7)),
    (D(2024, 3, 10, 2, 0), "America/New_York", D(2024, 3, 10, 7)),
    (D(2024, 3, 10, 3, 0), "America/New_York", D(2024, 3, 10, 7)),
    (D(2024, 3, 31, 2, 30), "Europe/Berlin", D(2024, 3, 31, 1)),
    (D(2024, 9, 8, 0, 0), "America/Santiago", D(2024, 9, 8, 4)),
    # ambiguous (fall back): the first occurrence, fold=0
    (D(2024, 11, 3, 1, 30), "America/New_York", D(2024, 11, 3, 5, 30)),
    (D(2024, 10, 27, 2, 30), "Europe/Berlin", D(2024, 10, 27, 0, 30)),
    (D(2024, 5, 15, 12, tzinfo=UTC), "Asia/Tokyo", D(2024, 5, 15, 12)),
])
def test_local_to_utc(local, tz, utc):
    assert local_to_utc(local, tz) == utc


# --- single values, granularities, time zones ------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-01-01", D(2024, 1, 1)),
    ("2024-01-01T10:00:00Z", D(2024, 1, 1, 5)),
    ("2024-07-01T10:00:00.250+02:00", D(2024, 7, 1, 4, 0, 0, 250000)),
    (" 2024-07-01 10:00 ", D(2024, 7, 1, 10)),
])
def test_parse_timestamp_value(value, expected):
    assert parse_timestamp_value(value, timezone="America/New_York", member=MEMBER) == expected


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "2024-01-01T10:00+05:99", "", 20240101, None])
def test_parse_timestamp_value_errors(value):
    with pytest.raises(QueryError) as err:
        parse_timestamp_value(value, timezone="UTC", member=MEMBER, field="beforeDate value")
    assert MEMBER in err.value.message and "beforeDate value" in err.value.message
    assert err.value.member == MEMBER and err.value.value == value


def test_check_granularity():
    assert [check_granularity(g.upper(), MEMBER) for g in GRANULARITIES] == list(GRANULARITIES)
    with pytest.raises(QueryError, match=r"orders\.created_at: granularity 'fortnight' is not one of second"):
        check_granularity("fortnight", MEMBER)
    with pytest.raises(QueryError, match="Did you mean 'month'"):
        check_granularity("mnth", MEMBER)
    with pytest.raises(QueryError):
        check_granularity(None, MEMBER)


def test_check_timezone():
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"
    assert check_timezone("america/new_york") == "America/New_York"
    for bad in ("Mars/Base", "America", "../etc/passwd", "", None):
        with pytest.raises(QueryError, match="is not a known IANA time zone"):
            check_timezone(bad)
    with pytest.raises(QueryError, match=r"^timezone 'Mars/Base' is not a known IANA time zone"):
        check_timezone("Mars/Base")
    with pytest.raises(QueryError, match="Mars/Base"):
        resolve("today", tz="Mars/Base")


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "reason"), [
    ("last 7 fortnights", "is not a date range"),
    ("next friday", "is not a date range"),
    ("last 0 days", "N must be at least 1"),
    ("from banana to now", "has no date in 'banana'"),
    ("from tomorrow to yesterday", "ends before it starts"),
    (["2024-03-01", "2024-01-01"], "ends before it starts"),
    (["2024-02-30", "2024-03-01"], "has an invalid date or time: '2024-02-30' (day is out of range"),
    (["0001-01-01", "2024-03-01"], "outside years 1-9999"),  # midnight in Berlin is still year 0 in UTC
    (["last week", "2024-01-01"], "relative"),
    (["2024-01-01", "2024-02-01", "2024-03-01"], "is not a date range"),
    ([], "is not a date range"),
    (42, "is not a date range"),
    (None, "is not a date range"),
    ({"from": "2024-01-01"}, "is not a date range"),
    ("last 999999 years", "outside years 1-9999"),
    ("9999-12-31", "outside years 1-9999"),
])
def test_errors_name_member_and_value(value, reason):
    with pytest.raises(QueryError) as err:
        resolve(value, tz="Europe/Berlin")
    message = err.value.message
    assert message.startswith(f"{MEMBER}: dateRange ")
    assert reason in message
    assert "invalid date" in reason or "'last 7 days'" in message  # the accepted forms
    assert err.value.member == MEMBER and err.value.value == value
    assert (f"'{value}'" if isinstance(value, str) else repr(value)) in message


def test_error_message_example():
    with pytest.raises(QueryError, match=r"^orders\.created_at: dateRange 'last 7 fortnights' is not a date"):
        resolve("last 7 fortnights")


# --- properties ------------------------------------------------------------------------------------------

DATES = ["2024-02-29", "2024-03-10T02:30", "0001-01-01", "9999-12-31T23:59:59.999999Z",
         "2024-01-01T00:00+14:00"]
WORDS = ["from", "to", "last", "next", "this", "past", "in", "ago", "now", "today", "yesterday", "tomorrow",
         "by", "a", "0", "1", "7", "360", "999999", "from now", *GRANULARITIES,
         *(g + "s" for g in GRANULARITIES), *DATES]
PHRASES = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)
NOWS = st.datetimes(min_value=D(1, 1, 2), max_value=D(9999, 12, 30))
ZONES = st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "America/Santiago", "Asia/Kolkata"])


def _check(value, now, tz):
    try:
        got = resolve_date_range(value, timezone=tz, now=now, member=MEMBER)
    except QueryError as err:
        assert err.member == MEMBER
        return
    assert got.start < got.end
    start, end = got.to_utc(tz)
    assert start <= end


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(), PHRASES), now=NOWS, tz=ZONES)
def test_resolve_raises_only_query_errors_and_orders_bounds(value, now, tz):
    _check(value, now, tz)


@settings(max_examples=150, deadline=None)
@given(value=st.lists(st.one_of(st.text(max_size=30), PHRASES, st.sampled_from(DATES)), max_size=3),
       now=NOWS, tz=ZONES)
def test_resolve_lists_raise_only_query_errors(value, now, tz):
    _check(value, now, tz)


@settings(max_examples=300, deadline=None)
@given(a=st.datetimes(min_value=D(1970, 1, 2), max_value=D(2100, 1, 1)), step=st.timedeltas(timedelta(0),
       timedelta(hours=3)), tz=ZONES)
def test_local_to_utc_is_monotonic_and_round_trips(a, step, tz):
    b = a + step
    assert local_to_utc(a, tz) <= local_to_utc(b, tz)
    back = local_to_utc(a, tz).replace(tzinfo=UTC).astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    assert back >= a  # equal unless ``a`` falls in a gap, which moves it forward
    assert back - a <= timedelta(hours=1)
