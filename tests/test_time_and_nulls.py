"""Time zones, granularities, relative ranges, NULL semantics, LIKE escaping, HAVING, paging and totals.

A 16-row table made here (model: tests/models/events). Every expected number below was worked out by
hand from the table; the comments give the local wall-clock times they rest on. Amounts are distinct
powers of two (one is NULL), so a sum names exactly which rows were counted.

    id  ts (UTC)          New York             Berlin               category  amount
     1  2024-03-10 04:30  03-09 23:30 EST Sat  03-10 05:30 CET      a         1
     2  2024-03-10 06:30  03-10 01:30 EST Sun  03-10 07:30          a         2
     3  2024-03-10 07:30  03-10 03:30 EDT      03-10 08:30          b         4
     4  2024-03-11 03:30  03-10 23:30 EDT      03-11 04:30 Mon      b         NULL
     5  2024-03-11 04:30  03-11 00:30 EDT Mon  03-11 05:30          NULL      16
     6  2024-11-03 05:30  11-03 01:30 EDT (1st) 11-03 06:30 CET     a         32
     7  2024-11-03 06:30  11-03 01:30 EST (2nd) 11-03 07:30         a         64
     8  2024-11-03 03:59  11-02 23:59 EDT Sat  11-03 04:59          NULL      128
     9  2024-11-04 04:30  11-03 23:30 EST Sun  11-04 05:30 Mon      c         256
    10  2024-03-30 23:30  03-30 19:30 EDT      03-31 00:30 CET Sun  b         512
    11  2024-03-31 22:30  03-31 18:30 EDT      04-01 00:30 CEST Mon c         1024
    12  2024-03-31 00:30  03-30 20:30 EDT      03-31 01:30 CET      50%_off   2048
    13  2024-03-31 01:30  03-30 21:30 EDT      03-31 03:30 CEST     50x_off   4096
    14  2023-12-31 23:30  12-31 18:30 EST Sun  2024-01-01 00:30 Mon 50%xoff   8192
    15  NULL                                                        a\\b      16384
    16  2024-06-15 12:00  06-15 08:00 EDT Sat  06-15 14:00 CEST     it's!     32768

New York: DST starts 2024-03-10 07:00 UTC (23-hour day), ends 2024-11-03 06:00 UTC (25-hour day, 01:xx
twice). Berlin: DST starts 2024-03-31 01:00 UTC (local 02:00-03:00 does not exist).
All amounts: 65527 (= 2^16 - 1 - 8). `ts_tz` holds the same instants as TIMESTAMPTZ.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from headless_bi.semantic.loader import load_models
from headless_bi.service import run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse

MODEL_DIR = Path(__file__).resolve().parent / "models" / "events"

EVENTS = [
    (1, "2024-03-10 04:30:00", "a", 1),
    (2, "2024-03-10 06:30:00", "a", 2),
    (3, "2024-03-10 07:30:00", "b", 4),
    (4, "2024-03-11 03:30:00", "b", None),
    (5, "2024-03-11 04:30:00", None, 16),
    (6, "2024-11-03 05:30:00", "a", 32),
    (7, "2024-11-03 06:30:00", "a", 64),
    (8, "2024-11-03 03:59:00", None, 128),
    (9, "2024-11-04 04:30:00", "c", 256),
    (10, "2024-03-30 23:30:00", "b", 512),
    (11, "2024-03-31 22:30:00", "c", 1024),
    (12, "2024-03-31 00:30:00", "50%_off", 2048),
    (13, "2024-03-31 01:30:00", "50x_off", 4096),
    (14, "2023-12-31 23:30:00", "50%xoff", 8192),
    (15, None, "a\\b", 16384),
    (16, "2024-06-15 12:00:00", "it's!", 32768),
]
# notes many_to_one events; note 6 points at no event (LEFT JOIN → NULL category)
NOTES = [(1, 5, "n1"), (2, 5, "n2"), (3, 8, "n3"), (4, 1, "n4"), (5, 3, "n5"), (6, 999, "orphan")]
ALL_IDS = {r[0] for r in EVENTS}


@pytest.fixture(scope="module")
def model():
    return load_models(MODEL_DIR)


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory):
    path = str(tmp_path_factory.mktemp("events") / "events.duckdb")
    con = duckdb.connect(path)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE events (id INTEGER, ts TIMESTAMP, ts_tz TIMESTAMPTZ, category VARCHAR, "
                "amount INTEGER)")
    con.executemany("INSERT INTO events VALUES (?, CAST(? AS TIMESTAMP), "
                    "CAST(? AS TIMESTAMP) AT TIME ZONE 'UTC', ?, ?)",
                    [(i, t, t, c, a) for i, t, c, a in EVENTS])
    con.execute("CREATE TABLE notes (id INTEGER, event_id INTEGER, body VARCHAR)")
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)", NOTES)
    # the table is what the docstring says (guards the hand-made expectations below)
    totals = con.execute("SELECT count(*), sum(amount), count(amount) FROM events").fetchone()
    assert totals == (16, 65527, 15)
    assert con.execute("SELECT count(*) FROM events WHERE ts_tz IS NOT DISTINCT FROM ts AT TIME ZONE 'UTC'"
                       ).fetchone() == (16,)
    con.close()
    warehouse = DuckDBWarehouse(path, pool_size=2)
    yield warehouse
    warehouse.close()


def run(model, wh, query, now=None):
    return run_query(model, wh, query, now=now or datetime(2024, 12, 1, 12, 0))


def rows(model, wh, query, keys, now=None):
    return [tuple(r[k] for k in keys) for r in run(model, wh, query, now).data]


def ids(model, wh, filters, timezone=None):
    query = {"dimensions": ["events.id"], "filters": filters}
    if timezone:
        query["timezone"] = timezone
    return {r["events.id"] for r in run(model, wh, query).data}


def T(day: str, time: str = "00:00:00") -> str:
    return f"{day}T{time}.000"


def bucketed(model, wh, member, granularity, timezone=None, date_range=None, measures=("count", "amount")):
    td = {"dimension": f"events.{member}", "granularity": granularity}
    if date_range is not None:
        td["dateRange"] = date_range
    query = {"measures": [f"events.{m}" for m in measures], "timeDimensions": [td]}
    if timezone:
        query["timezone"] = timezone
    keys = [f"events.{member}.{granularity}", *(f"events.{m}" for m in measures)]
    return rows(model, wh, query, keys)


# --- granularities and time zones -------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["ts", "ts_tz"])
def test_day_in_new_york_has_23_and_25_hour_days(model, wh, member):
    got = bucketed(model, wh, member, "day", "America/New_York", measures=("count", "amount", "amount_count"))
    assert got == [
        (T("2023-12-31"), 1, 8192, 1),
        (T("2024-03-09"), 1, 1, 1),
        (T("2024-03-10"), 3, 6, 2),  # 05:00 UTC .. 04:00 UTC next day (23 h): ids 2, 3, 4 (amount NULL)
        (T("2024-03-11"), 1, 16, 1),
        (T("2024-03-30"), 3, 6656, 3),
        (T("2024-03-31"), 1, 1024, 1),
        (T("2024-06-15"), 1, 32768, 1),
        (T("2024-11-02"), 1, 128, 1),
        (T("2024-11-03"), 3, 352, 3),  # 04:00 UTC .. 05:00 UTC next day (25 h): ids 6, 7, 9
        (None, 1, 16384, 1),  # NULL time forms its own bucket, sorted last
    ]


@pytest.mark.parametrize("member", ["ts", "ts_tz"])
def test_day_in_utc(model, wh, member):
    assert bucketed(model, wh, member, "day") == [
        (T("2023-12-31"), 1, 8192),
        (T("2024-03-10"), 3, 7),
        (T("2024-03-11"), 2, 16),
        (T("2024-03-30"), 1, 512),
        (T("2024-03-31"), 3, 7168),
        (T("2024-06-15"), 1, 32768),
        (T("2024-11-03"), 3, 224),
        (T("2024-11-04"), 1, 256),
        (None, 1, 16384),
    ]


@pytest.mark.parametrize("member", ["ts", "ts_tz"])
def test_hour_on_fall_back_day_merges_the_repeated_hour(model, wh, member):
    got = bucketed(model, wh, member, "hour", "America/New_York", ["2024-11-03", "2024-11-03"])
    assert got == [(T("2024-11-03", "01:00:00"), 2, 96), (T("2024-11-03", "23:00:00"), 1, 256)]


@pytest.mark.parametrize("member", ["ts", "ts_tz"])
def test_hour_on_spring_forward_day(model, wh, member):
    got = bucketed(model, wh, member, "hour", "America/New_York", ["2024-03-10", "2024-03-10"])
    assert got == [(T("2024-03-10", "01:00:00"), 1, 2), (T("2024-03-10", "03:00:00"), 1, 4),
                   (T("2024-03-10", "23:00:00"), 1, None)]


def test_hour_in_berlin_on_spring_forward_day(model, wh):
    got = bucketed(model, wh, "ts", "hour", "Europe/Berlin", ["2024-03-31", "2024-03-31"])
    # Berlin's 2024-03-31 is 2024-03-30 23:00 .. 2024-03-31 22:00 UTC: ids 10, 12, 13 (11 is 22:30 UTC)
    assert got == [(T("2024-03-31", "00:00:00"), 1, 512), (T("2024-03-31", "01:00:00"), 1, 2048),
                   (T("2024-03-31", "03:00:00"), 1, 4096)]


def test_iso_weeks_in_new_york(model, wh):
    assert bucketed(model, wh, "ts", "week", "America/New_York") == [
        (T("2023-12-25"), 1, 8192),
        (T("2024-03-04"), 4, 7),  # Sat 9th and Sun 10th belong to the week of Monday the 4th
        (T("2024-03-11"), 1, 16),
        (T("2024-03-25"), 4, 7680),
        (T("2024-06-10"), 1, 32768),
        (T("2024-10-28"), 4, 480),
        (None, 1, 16384),
    ]


def test_iso_weeks_in_berlin(model, wh):
    assert bucketed(model, wh, "ts_tz", "week", "Europe/Berlin") == [
        (T("2024-01-01"), 1, 8192),  # 2023-12-31 23:30 UTC is Monday 2024-01-01 in Berlin
        (T("2024-03-04"), 3, 7),
        (T("2024-03-11"), 2, 16),
        (T("2024-03-25"), 3, 6656),
        (T("2024-04-01"), 1, 1024),
        (T("2024-06-10"), 1, 32768),
        (T("2024-10-28"), 3, 224),
        (T("2024-11-04"), 1, 256),
        (None, 1, 16384),
    ]


def test_month_quarter_year_in_berlin(model, wh):
    assert bucketed(model, wh, "ts", "month", "Europe/Berlin") == [
        (T("2024-01-01"), 1, 8192), (T("2024-03-01"), 8, 6679), (T("2024-04-01"), 1, 1024),
        (T("2024-06-01"), 1, 32768), (T("2024-11-01"), 4, 480), (None, 1, 16384)]
    assert bucketed(model, wh, "ts", "quarter", "Europe/Berlin") == [
        (T("2024-01-01"), 9, 14871), (T("2024-04-01"), 2, 33792), (T("2024-10-01"), 4, 480), (None, 1, 16384)]
    assert bucketed(model, wh, "ts", "year", "Europe/Berlin") == [(T("2024-01-01"), 15, 49143),
                                                                    (None, 1, 16384)]


def test_month_quarter_year_in_new_york(model, wh):
    assert bucketed(model, wh, "ts", "month", "America/New_York") == [
        (T("2023-12-01"), 1, 8192), (T("2024-03-01"), 9, 7703), (T("2024-06-01"), 1, 32768),
        (T("2024-11-01"), 4, 480), (None, 1, 16384)]
    assert bucketed(model, wh, "ts", "quarter", "America/New_York") == [
        (T("2023-10-01"), 1, 8192), (T("2024-01-01"), 9, 7703), (T("2024-04-01"), 1, 32768),
        (T("2024-10-01"), 4, 480), (None, 1, 16384)]
    assert bucketed(model, wh, "ts", "year", "America/New_York") == [
        (T("2023-01-01"), 1, 8192), (T("2024-01-01"), 14, 40951), (None, 1, 16384)]


def test_granularity_with_a_plain_dimension_and_null_groups(model, wh):
    query = {"measures": ["events.count"], "dimensions": ["events.category"], "timezone": "America/New_York",
             "timeDimensions": [{"dimension": "events.ts", "granularity": "day",
                                 "dateRange": ["2024-11-02", "2024-11-03"]}],
             "order": [["events.ts", "asc"], ["events.category", "asc"]]}
    got = rows(model, wh, query, ["events.ts.day", "events.category", "events.count"])
    assert got == [(T("2024-11-02"), None, 1), (T("2024-11-03"), "a", 2), (T("2024-11-03"), "c", 1)]


# --- relative date ranges with a fixed now ----------------------------------------------------------------


@pytest.mark.parametrize(("date_range", "timezone", "now", "expected"), [
    # last 7 days = the 7 whole days before today: [03-04, 03-11) local
    ("last 7 days", "America/New_York", datetime(2024, 3, 11, 12), (4, 7)),  # ids 1-4 (4: 23:30 EDT 03-10)
    ("last 7 days", "UTC", datetime(2024, 3, 11, 12), (3, 7)),  # ids 1-3 (4 is 03:30 UTC on the 11th)
    ("yesterday", "America/New_York", datetime(2024, 3, 11, 12), (3, 6)),
    ("today", "America/New_York", datetime(2024, 3, 11, 12), (1, 16)),
    ("this week", "Europe/Berlin", datetime(2024, 4, 3, 12), (1, 1024)),  # week of Mon 04-01 local
    ("last month", "America/New_York", datetime(2024, 4, 15), (9, 7703)),
    ("last quarter", "Europe/Berlin", datetime(2024, 5, 1), (9, 14871)),
    ("from 2 days ago to now", "America/New_York", datetime(2024, 11, 4, 12), (4, 480)),  # days 11-02..11-04
    # now = 02:10 EST, just after fall-back: the two elapsed hours before the current one are 05:00-07:00 UTC
    ("last 2 hours", "America/New_York", datetime(2024, 11, 3, 7, 10), (2, 96)),
])
@pytest.mark.parametrize("member", ["ts", "ts_tz"])
def test_relative_date_ranges(model, wh, member, date_range, timezone, now, expected):
    query = {"measures": ["events.count", "events.amount"], "timezone": timezone,
             "timeDimensions": [{"dimension": f"events.{member}", "dateRange": date_range}]}
    assert rows(model, wh, query, ["events.count", "events.amount"], now=now) == [expected]


# --- date filters -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("operator", "values", "timezone", "expected"), [
    ("inDateRange", ["2024-03-10", "2024-03-10"], "America/New_York", {2, 3, 4}),
    ("inDateRange", ["2024-03-10", "2024-03-10"], "UTC", {1, 2, 3}),
    ("notInDateRange", ["2024-03-01", "2024-10-31"], "UTC", {14, 6, 7, 8, 9}),  # NULL ts is not outside
    ("beforeDate", ["2024-03-10"], "America/New_York", {14, 1}),  # < 2024-03-10 05:00 UTC
    # 01:30 on 2024-11-03 is ambiguous in New York: the first occurrence (05:30 UTC) is meant
    ("afterDate", ["2024-11-03T01:30:00"], "America/New_York", {7, 9}),
    ("afterOrOnDate", ["2024-11-03T01:30:00"], "America/New_York", {6, 7, 9}),
    # 03:00 CEST = 01:00 UTC; 02:30 does not exist in Berlin that day and means the transition, 01:00 UTC
    ("beforeOrOnDate", ["2024-03-31T03:00:00"], "Europe/Berlin", {14, 1, 2, 3, 4, 5, 10, 12}),
    ("beforeDate", ["2024-03-31T02:30:00"], "Europe/Berlin", {14, 1, 2, 3, 4, 5, 10, 12}),
])
@pytest.mark.parametrize("member", ["ts", "ts_tz"])
def test_date_filters(model, wh, member, operator, values, timezone, expected):
    filters = [{"member": f"events.{member}", "operator": operator, "values": values}]
    assert ids(model, wh, filters, timezone) == expected


def test_date_filter_with_an_explicit_utc_instant_inside_the_repeated_hour(model, wh):
    """'2024-11-03T06:00:00Z' is an instant: the second 01:00 in New York. Rows at or after it: 7 (06:30 UTC)
    and 9. Taking the first 01:00 (05:00 UTC) instead would wrongly add row 6 (05:30 UTC)."""
    filters = [{"member": "events.ts", "operator": "afterOrOnDate", "values": ["2024-11-03T06:00:00Z"]}]
    assert ids(model, wh, filters, "America/New_York") == {7, 9}


def test_date_range_with_explicit_utc_instants_inside_the_repeated_hour(model, wh):
    """[06:00Z, 06:59:59Z] on 2024-11-03 is the second 01:xx hour in New York: only row 7 (06:30 UTC)."""
    query = {"measures": ["events.count", "events.amount"], "timezone": "America/New_York",
             "timeDimensions": [{"dimension": "events.ts",
                                 "dateRange": ["2024-11-03T06:00:00Z", "2024-11-03T06:59:59Z"]}]}
    assert rows(model, wh, query, ["events.count", "events.amount"]) == [(1, 64)]


# --- NULL semantics ---------------------------------------------------------------------------------------


def test_null_dimension_values_form_their_own_group(model, wh):
    query = {"measures": ["events.count", "events.amount", "events.amount_avg", "events.amount_count"],
             "dimensions": ["events.category"], "order": {"events.category": "asc"}}
    keys = ["events.category", "events.count", "events.amount", "events.amount_avg", "events.amount_count"]
    assert rows(model, wh, query, keys) == [
        ("50%_off", 1, 2048, 2048.0, 1),
        ("50%xoff", 1, 8192, 8192.0, 1),
        ("50x_off", 1, 4096, 4096.0, 1),
        ("a", 4, 99, 24.75, 4),
        ("a\\b", 1, 16384, 16384.0, 1),
        ("b", 3, 516, 258.0, 2),  # avg ignores the NULL amount of row 4
        ("c", 2, 1280, 640.0, 2),
        ("it's!", 1, 32768, 32768.0, 1),
        (None, 2, 144, 72.0, 2),  # NULL sorts last
    ]


def test_totals_without_dimensions(model, wh):
    query = {"measures": ["events.count", "events.amount_count", "events.amount", "events.amount_max",
                          "events.categories"]}
    keys = query["measures"]
    assert rows(model, wh, query, keys) == [(16, 15, 65527, 32768, 8)]


def test_null_group_is_one_row_across_two_cubes(model, wh):
    """events.count and notes.count both have a NULL category group; they combine into one row."""
    query = {"measures": ["events.count", "notes.count"], "dimensions": ["events.category"],
             "order": {"events.category": "asc"}}
    keys = ["events.category", "events.count", "notes.count"]
    got = {r[0]: (r[1], r[2]) for r in rows(model, wh, query, keys)}
    assert len(got) == 9
    assert got[None] == (2, 4)  # notes 1, 2 (event 5), 3 (event 8) and the orphan note 6
    assert got["a"] == (4, 1) and got["b"] == (3, 1)
    assert got["c"][0] == 2 and got["c"][1] in (None, 0)


@pytest.mark.parametrize(("operator", "values", "expected"), [
    ("equals", ["a"], {1, 2, 6, 7}),
    ("equals", ["a", "b"], {1, 2, 3, 4, 6, 7, 10}),
    ("equals", [None], {5, 8}),
    ("equals", ["a", None], {1, 2, 6, 7, 5, 8}),
    # notEquals keeps NULL rows (Cube: `x <> v OR x IS NULL`)
    ("notEquals", ["a"], ALL_IDS - {1, 2, 6, 7}),
    ("notEquals", ["a", "b"], ALL_IDS - {1, 2, 3, 4, 6, 7, 10}),
    ("notEquals", [None], ALL_IDS - {5, 8}),
    ("notEquals", ["a", None], ALL_IDS - {1, 2, 6, 7, 5, 8}),
    ("set", None, ALL_IDS - {5, 8}),
    ("notSet", None, {5, 8}),
])
def test_equality_and_null_filters(model, wh, operator, values, expected):
    f = {"member": "events.category", "operator": operator}
    if values is not None:
        f["values"] = values
    assert ids(model, wh, [f]) == expected


@pytest.mark.parametrize(("member", "operator", "values", "expected"), [
    ("events.ts", "set", None, ALL_IDS - {15}),
    ("events.ts", "notSet", None, {15}),
    ("events.amount_value", "equals", [4], {3}),
    ("events.amount_value", "equals", ["4"], {3}),
    ("events.amount_value", "notEquals", [4], ALL_IDS - {3}),  # keeps row 4 (NULL amount)
    ("events.amount_value", "gt", [1000], {11, 12, 13, 14, 15, 16}),
    ("events.amount_value", "gte", [1024], {11, 12, 13, 14, 15, 16}),
    ("events.amount_value", "lt", [3], {1, 2}),  # NULL is not < 3
    ("events.amount_value", "lte", [2], {1, 2}),
    ("events.amount_value", "notSet", None, {4}),
])
def test_value_filters(model, wh, member, operator, values, expected):
    f = {"member": member, "operator": operator}
    if values is not None:
        f["values"] = values
    assert ids(model, wh, [f]) == expected


# --- LIKE operators: wildcards in values are literal ------------------------------------------------------


@pytest.mark.parametrize(("operator", "values", "expected"), [
    ("contains", ["%"], {12, 14}),
    ("contains", ["_"], {12, 13}),
    ("contains", ["%_"], {12}),
    ("contains", ["x_"], {13}),  # an unescaped '_' would also match 'xo' in '50%xoff'
    ("startsWith", ["50%"], {12, 14}),
    ("startsWith", ["50_"], set()),
    ("endsWith", ["_off"], {12, 13}),
    ("contains", ["!"], {16}),  # the builder's escape character itself
    ("contains", ["!%"], set()),
    ("contains", ["s!"], {16}),
    ("contains", ["'"], {16}),
    ("contains", ["\\"], {15}),
    ("contains", ["A"], {1, 2, 6, 7, 15}),  # case-insensitive, like Cube
    ("contains", ["%", "it"], {12, 14, 16}),  # several values: any of them
    ("notContains", ["%"], ALL_IDS - {12, 14}),  # keeps NULLs, like Cube
    ("notStartsWith", ["50"], ALL_IDS - {12, 13, 14}),
    ("notEndsWith", ["off"], ALL_IDS - {12, 13, 14}),
])
def test_like_operators_escape_wildcards(model, wh, operator, values, expected):
    assert ids(model, wh, [{"member": "events.category", "operator": operator, "values": values}]) == expected


# --- measure filters (HAVING) -----------------------------------------------------------------------------


def test_measure_filter(model, wh):
    query = {"measures": ["events.count"], "dimensions": ["events.category"],
             "filters": [{"member": "events.count", "operator": "gt", "values": [2]}]}
    assert rows(model, wh, query, ["events.category", "events.count"]) == [("a", 4), ("b", 3)]


def test_measure_filter_on_a_measure_not_selected(model, wh):
    query = {"measures": ["events.count"], "dimensions": ["events.category"],
             "filters": [{"member": "events.amount", "operator": "gte", "values": [1000]}],
             "order": {"events.category": "asc"}}
    assert rows(model, wh, query, ["events.category", "events.count"]) == [
        ("50%_off", 1), ("50%xoff", 1), ("50x_off", 1), ("a\\b", 1), ("c", 2), ("it's!", 1)]


def test_measure_filter_keeps_the_null_group(model, wh):
    query = {"measures": ["events.count"], "dimensions": ["events.category"],
             "filters": [{"member": "events.count", "operator": "equals", "values": [2]}],
             "order": {"events.category": "asc"}}
    assert rows(model, wh, query, ["events.category", "events.count"]) == [("c", 2), (None, 2)]


def test_measure_filter_across_two_cubes(model, wh):
    query = {"measures": ["events.count", "notes.count"], "dimensions": ["events.category"],
             "filters": [{"member": "notes.count", "operator": "gt", "values": [0]}],
             "order": {"events.category": "asc"}}
    assert rows(model, wh, query, ["events.category", "events.count", "notes.count"]) == [
        ("a", 4, 1), ("b", 3, 1), (None, 2, 4)]


def test_measure_and_dimension_filters_together(model, wh):
    query = {"measures": ["events.amount"], "dimensions": ["events.category"],
             "filters": [{"member": "events.category", "operator": "notEquals", "values": ["a"]},
                         {"member": "events.amount", "operator": "lt", "values": [1000]}],
             "order": {"events.category": "asc"}}
    assert rows(model, wh, query, ["events.category", "events.amount"]) == [("b", 516), (None, 144)]


# --- order, limit, offset, total --------------------------------------------------------------------------


def test_order_limit_offset(model, wh):
    query = {"measures": ["events.count"], "dimensions": ["events.category"],
             "order": [["events.count", "desc"], ["events.category", "asc"]], "limit": 3, "offset": 1}
    assert rows(model, wh, query, ["events.category", "events.count"]) == [("b", 3), ("c", 2), (None, 2)]


def test_order_by_dimension_both_ways(model, wh):
    base = {"measures": ["events.count"], "dimensions": ["events.category"]}
    key = ["events.category"]
    up = [r[0] for r in rows(model, wh, {**base, "order": {"events.category": "asc"}}, key)]
    assert up == ["50%_off", "50%xoff", "50x_off", "a", "a\\b", "b", "c", "it's!", None]
    down = [r[0] for r in rows(model, wh, {**base, "order": {"events.category": "desc"}}, key)]
    assert [v for v in down if v is not None] == ["it's!", "c", "b", "a\\b", "a", "50x_off", "50%xoff",
                                                  "50%_off"]


def test_order_by_time_dimension_name_without_granularity(model, wh):
    query = {"measures": ["events.count"], "timezone": "America/New_York",
             "timeDimensions": [{"dimension": "events.ts", "granularity": "month"}],
             "order": {"events.ts": "desc"}, "limit": 2}
    assert rows(model, wh, query, ["events.ts.month", "events.count"]) == [(T("2024-11-01"), 4),
                                                                           (T("2024-06-01"), 1)]


def test_total_counts_all_rows_ignoring_limit_and_offset(model, wh):
    query = {"measures": ["events.count"], "dimensions": ["events.category"], "limit": 2, "offset": 1,
             "total": True}
    result = run(model, wh, query)
    assert len(result.data) == 2
    assert result.total == 9


def test_total_respects_filters_and_measure_filters(model, wh):
    query = {"measures": ["events.count"], "dimensions": ["events.category"], "limit": 1, "total": True,
             "filters": [{"member": "events.count", "operator": "gt", "values": [1]},
                         {"member": "events.ts", "operator": "set"}]}
    result = run(model, wh, query)
    assert len(result.data) == 1
    assert result.total == 4  # a (4), b (3), c (2), NULL (2); row 15 (NULL ts) is in none of them


def test_total_with_time_buckets(model, wh):
    query = {"measures": ["events.count"], "timezone": "America/New_York", "limit": 1, "total": True,
             "timeDimensions": [{"dimension": "events.ts", "granularity": "day",
                                 "dateRange": ["2024-03-01", "2024-03-31"]}]}
    result = run(model, wh, query)
    assert result.total == 5  # 03-09, 03-10, 03-11, 03-30, 03-31
    assert [r["events.ts.day"] for r in result.data] == [T("2024-03-09")]
