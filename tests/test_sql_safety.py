"""SQL safety: hostile input never changes the shape of the compiled SQL and never escapes as SQL.

* Filter values (strings, numbers, dates) end up as literals only: the SQL compiled with a hostile value
  parses to the same tree as the SQL compiled with a benign value once literals are masked, and the
  literal carries exactly the value sent.
* Member names, order keys, time zones, granularities and other query fields that are not valid raise a
  `HeadlessBIError` subclass: never another exception type, never SQL.
* A few hostile values are executed for real on DuckDB and compared with plain parameterised SQL.

Model: tests/models/events (compiling needs no data; the execution tests make their own table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from headless_bi.errors import HeadlessBIError
from headless_bi.semantic.compiler import compile_query
from headless_bi.semantic.loader import load_models
from headless_bi.semantic.time import GRANULARITIES
from headless_bi.service import run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse

MODEL = load_models(Path(__file__).resolve().parent / "models" / "events")
DIALECTS = ("duckdb", "postgres")
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE_TEXT = [
    "'", "''", "'; DROP TABLE events; --", "x' OR '1'='1", "' OR 1=1 --", "\\", "\\'", "'\\",
    "a\\'; SELECT 1; --",
    '"', '"; DROP TABLE events; --', "%", "_", "%%", "!", "!%", "!_", "!!", "%_!", "*/", "/*", "--", ";",
    "$$", "$tag$ x $tag$", "E'\\x27'", "x' || (SELECT version()) || '", "::text", "{CUBE}", "{events.id}",
    "${events.category}", "\n", "\r\n", "\t", "\u2028", "\u202e", "é", "Ω", "😀", "日本語", "\ufeff",
    " ", "", "null", "NULL", "1; --", "')) OR ((1=1", "x'||chr(39)||'",
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30),
)
STRING_OPERATORS = ["equals", "notEquals", "contains", "notContains", "startsWith", "notStartsWith",
                    "endsWith", "notEndsWith"]


# --- helpers ----------------------------------------------------------------------------------------------


def _mask(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return exp.Literal.string("?")
    if isinstance(node, exp.Literal):
        return exp.Literal.string("?")
    return node


def shape(sql: str, dialect: str) -> str:
    """The SQL's syntax tree with every string/number literal replaced by '?'."""
    tree = sqlglot.parse_one(sql, dialect=dialect)
    return tree.transform(_mask).sql(dialect=dialect)


def string_literals(sql: str, dialect: str) -> list[str]:
    tree = sqlglot.parse_one(sql, dialect=dialect)
    return [lit.this for lit in tree.find_all(exp.Literal) if lit.is_string]


def compile_sql(query: dict[str, Any], dialect: str = "duckdb") -> str:
    return compile_query(MODEL, query, dialect=dialect).sql


def like_unescape(pattern: str, kind: str) -> str:
    """The value inside a LIKE pattern written with ESCAPE '!' (strips the operator's own wildcards)."""
    body = {"contains": pattern[1:-1], "startswith": pattern[:-1], "endswith": pattern[1:]}[kind]
    out, i = [], 0
    while i < len(body):
        if body[i] == "!":
            i += 1
        elif body[i] in "%_":
            raise AssertionError(f"unescaped wildcard in {pattern!r}")
        out.append(body[i])
        i += 1
    return "".join(out)


def string_filter_query(operator: str, values: list[Any]) -> dict[str, Any]:
    return {"measures": ["events.count"], "dimensions": ["events.category"],
            "filters": [{"member": "events.category", "operator": operator, "values": values}]}


# --- filter values: same shape, exact literal -------------------------------------------------------------


@SETTINGS
@given(value=hostile_text, operator=st.sampled_from(STRING_OPERATORS), dialect=st.sampled_from(DIALECTS))
@example(value="'; DROP TABLE events; --", operator="equals", dialect="duckdb")
@example(value="a\\'; SELECT 1; --", operator="contains", dialect="postgres")
def test_string_filter_values_do_not_change_the_sql_shape(value, operator, dialect):
    benign = compile_sql(string_filter_query(operator, ["x"]), dialect)
    hostile = compile_sql(string_filter_query(operator, [value]), dialect)
    assert shape(hostile, dialect) == shape(benign, dialect)
    literals = string_literals(hostile, dialect)
    if operator in ("equals", "notEquals"):
        assert value in literals
    else:
        kind = operator.removeprefix("not").lower()
        patterns = [lit for lit in literals if lit != "!" and lit not in ("events.category", "events.count")]
        assert any(like_unescape(p, kind) == value for p in patterns if len(p) >= 1), (literals, value)


@SETTINGS
@given(values=st.lists(hostile_text, min_size=2, max_size=4), dialect=st.sampled_from(DIALECTS))
def test_several_hostile_values_keep_the_shape(values, dialect):
    benign = compile_sql(string_filter_query("equals", [f"v{i}" for i in range(len(values))]), dialect)
    hostile = compile_sql(string_filter_query("equals", values), dialect)
    assert shape(hostile, dialect) == shape(benign, dialect)


@SETTINGS
@given(value=st.one_of(hostile_text, st.integers(-10**12, 10**12),
                       st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none()),
       operator=st.sampled_from(["equals", "notEquals", "gt", "gte", "lt", "lte"]))
@example(value="1; DROP TABLE events", operator="equals")
@example(value="-5", operator="gt")
@example(value=-5, operator="gt")
def test_number_filter_values_are_numbers_or_refused(value, operator):
    def query(v):
        return {"measures": ["events.count"],
                "filters": [{"member": "events.amount_value", "operator": operator, "values": [v]}]}

    try:
        hostile = compile_sql(query(value))
    except HeadlessBIError:
        return
    if value is None:  # equals/notEquals null → IS [NOT] NULL, a different (and fixed) shape
        assert shape(hostile, "duckdb") == shape(compile_sql(query(None)), "duckdb")
        return
    assert shape(hostile, "duckdb") == shape(compile_sql(query(1)), "duckdb")


@SETTINGS
@given(value=hostile_text, operator=st.sampled_from(["beforeDate", "afterDate", "beforeOrOnDate",
                                                     "afterOrOnDate", "inDateRange", "notInDateRange"]))
@example(value="2024-01-01'; DROP TABLE events; --", operator="beforeDate")
@example(value="2024-01-01T10:00:00' OR '1'='1", operator="inDateRange")
def test_time_filter_values_are_timestamps_or_refused(value, operator):
    def query(v):
        return {"measures": ["events.count"], "timezone": "Europe/Berlin",
                "filters": [{"member": "events.ts", "operator": operator, "values": [v]}]}

    try:
        hostile = compile_sql(query(value))
    except HeadlessBIError:
        return
    benign_shapes = {shape(compile_sql(query(v)), "duckdb") for v in ("2024-01-01", "2024-01-01T10:30:00")}
    assert shape(hostile, "duckdb") in benign_shapes


@SETTINGS
@given(value=st.one_of(hostile_text, st.lists(hostile_text, min_size=1, max_size=2)))
@example(value="last 7 days'; DROP TABLE events; --")
@example(value=["2024-01-01", "2024-01-31' OR '1'='1"])
def test_date_ranges_are_dates_or_refused(value):
    def query(v):
        return {"measures": ["events.count"],
                "timeDimensions": [{"dimension": "events.ts", "granularity": "day", "dateRange": v}]}

    try:
        hostile = compile_sql(query(value))
    except HeadlessBIError:
        return
    benign = (["2024-01-01", "2024-01-31"], ["2024-01-01T10:00", "2024-01-01T11:00"])
    benign_shapes = {shape(compile_sql(query(v)), "duckdb") for v in benign}
    assert shape(hostile, "duckdb") in benign_shapes


@SETTINGS
@given(value=st.one_of(hostile_text, st.integers(), st.floats(), st.booleans()))
def test_measure_filter_values_are_numbers_or_refused(value):
    def query(v):
        return {"measures": ["events.count"], "dimensions": ["events.category"],
                "filters": [{"member": "events.amount", "operator": "gt", "values": [v]}]}

    try:
        hostile = compile_sql(query(value))
    except HeadlessBIError:
        return
    assert shape(hostile, "duckdb") == shape(compile_sql(query(1)), "duckdb")


# --- names, order keys, time zones, granularities: refused with a HeadlessBIError -------------------------

VALID_NAMES = {m.path for m in MODEL.all_members()}
HOSTILE_NAMES = [
    "events.id; DROP TABLE events; --", 'events."id"', "events.id--", "events", "events.", ".id", "",
    "events.ts.fortnight", "events.id.day", "events.id.id", "events.category' OR '1'='1",
    "events.*", "*", "events.count)",
    "(SELECT 1).x", "__proto__.constructor", "events.__class__", "events.id ", " events.id", "EVENTS.ID",
    "events\u200b.id", "events.\u0456d",  # zero-width space; Cyrillic small i
    "{CUBE}.id", "events.{id}", "notes.events", "events.notes",
]
hostile_name = st.one_of(st.sampled_from(HOSTILE_NAMES), hostile_text)


def _slots(name: str) -> list[dict[str, Any]]:
    return [
        {"measures": [name]},
        {"dimensions": [name]},
        {"measures": ["events.count"], "timeDimensions": [{"dimension": name, "granularity": "day"}]},
        {"measures": ["events.count"], "filters": [{"member": name, "operator": "equals", "values": ["a"]}]},
        {"measures": ["events.count"], "filters": [{"member": name, "operator": "set"}]},
        {"measures": ["events.count"], "segments": [name]},
        {"measures": ["events.count"], "dimensions": ["events.category"], "order": {name: "asc"}},
        {"measures": ["events.count"], "dimensions": ["events.category"], "order": [[name, "desc"]]},
    ]


def assert_refused(query: dict[str, Any], dialect: str = "duckdb") -> None:
    try:
        sql = compile_query(MODEL, query, dialect=dialect).sql
    except HeadlessBIError:
        return
    raise AssertionError(f"compiled instead of refusing: {query!r}\n{sql}")


@SETTINGS
@given(name=hostile_name)
def test_hostile_member_names_are_refused_everywhere(name):
    assume(name not in VALID_NAMES)
    for query in _slots(name):
        if query.get("dimensions") == [name] and _is_bucketed_time(name):
            continue  # Cube's REST form `cube.time_dimension.granularity` is a valid dimension
        assert_refused(query)


def _is_bucketed_time(name: str) -> bool:
    base, _, granularity = name.rpartition(".")
    member = next((m for m in MODEL.all_members() if m.path == base), None)
    return getattr(member, "type", None) == "time" and granularity in GRANULARITIES


@pytest.mark.parametrize("value", [None, 1, 1.5, True, [], ["events.count"], {}, {"a": 1}], ids=repr)
@pytest.mark.parametrize("slot", ["measures", "dimensions", "timeDimensions", "filter_member", "segments"])
def test_non_string_member_names_are_refused(slot, value):
    query: dict[str, Any] = {"measures": ["events.count"]}
    if slot in ("measures", "dimensions", "segments"):
        query[slot] = [value]
    elif slot == "timeDimensions":
        query["timeDimensions"] = [{"dimension": value, "granularity": "day"}]
    else:
        query["filters"] = [{"member": value, "operator": "equals", "values": ["a"]}]
    assert_refused(query)


@pytest.mark.parametrize("value", [None, 1, 1.5, True, [], ["events.count"], {}, {"a": 1}], ids=repr)
def test_non_string_order_keys_are_refused(value):
    """Order as a list of pairs lets a client send any JSON value as the key."""
    assert_refused({"measures": ["events.count"], "dimensions": ["events.category"],
                    "order": [[value, "asc"]]})


@pytest.mark.parametrize("value", [None, 1, True, [], ["equals"], {}, {"op": "equals"}, "EQUALS", "equals "],
                         ids=repr)
def test_non_string_or_unknown_operators_are_refused(value):
    assert_refused({"measures": ["events.count"],
                    "filters": [{"member": "events.category", "operator": value, "values": ["a"]}]})


@pytest.mark.parametrize("value", [10**400, -(10**400), 10**30, float("nan"), float("inf"), "1e400", "nan",
                                   "Infinity", "0x10", "1 OR 1=1", [1], {"a": 1}],
                         ids=["1e400-int", "-1e400-int", "1e30-int", "nan", "inf", "1e400-str", "nan-str",
                              "Infinity-str", "hex-str", "sql-str", "list", "dict"])
def test_out_of_range_numbers_are_refused_or_exact(value):
    """A number filter value is a number the database can hold, or a QueryError."""
    query = {"measures": ["events.count"],
             "filters": [{"member": "events.amount_value", "operator": "equals", "values": [value]}]}
    try:
        sql = compile_sql(query)
    except HeadlessBIError:
        return
    assert shape(sql, "duckdb") == shape(compile_sql({**query, "filters": [
        {"member": "events.amount_value", "operator": "equals", "values": [1]}]}), "duckdb")


@SETTINGS
@given(direction=st.one_of(hostile_text, st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)))
def test_hostile_order_directions_are_refused(direction):
    assume(not (isinstance(direction, str) and direction.lower() in ("asc", "desc")))
    assert_refused({"measures": ["events.count"], "dimensions": ["events.category"],
                    "order": [["events.count", direction]]})
    if isinstance(direction, str | int) or direction is None:
        assert_refused({"measures": ["events.count"], "dimensions": ["events.category"],
                        "order": {"events.count": direction}})


TZ_HOSTILE = ["UTC'; DROP TABLE events; --", "Europe/Berlin' --", "../../../etc/passwd", "/etc/localtime",
              "Europe/../Europe/Berlin", "Europe/Berlin\n", " UTC", "Europe\\Berlin", "'", "", "+01:00",
              "UTC+1'", "Etc/GMT+5' OR '1'='1"]
TZ_NAMES = available_timezones()


@SETTINGS
@given(tz=st.one_of(st.sampled_from(TZ_HOSTILE), hostile_text, st.integers(), st.lists(st.text(max_size=2))))
def test_hostile_timezones_are_refused_or_canonical(tz):
    query = {"measures": ["events.count"], "timezone": tz,
             "timeDimensions": [{"dimension": "events.ts", "granularity": "day", "dateRange": "last 7 days"}]}
    try:
        compiled = compile_query(MODEL, query)
    except HeadlessBIError:
        return
    if not tz:  # "" means the default, UTC
        assert compiled.query.timezone == "UTC"
        return
    assert compiled.query.timezone in TZ_NAMES, compiled.query.timezone
    reference = "UTC" if compiled.query.timezone == "UTC" else "Europe/Berlin"
    benign = compile_query(MODEL, {**query, "timezone": reference}).sql
    assert shape(compiled.sql, "duckdb") == shape(benign, "duckdb")


@SETTINGS
@given(granularity=st.one_of(st.sampled_from(["day'; DROP TABLE events; --", "DAY)", "day ", "days", "WEEK",
                                              "Week", "\u212aelvin", "wee\u212a", "fortnight",
                                              "millisecond"]),
                             hostile_text, st.integers(), st.lists(st.text(max_size=2), max_size=1)))
def test_hostile_granularities_are_refused_or_canonical(granularity):
    query = {"measures": ["events.count"],
             "timeDimensions": [{"dimension": "events.ts", "granularity": granularity}]}
    try:
        compiled = compile_query(MODEL, query)
    except HeadlessBIError:
        return
    assert granularity is not None
    got = compiled.query.dimensions[0].granularity
    assert got in GRANULARITIES
    benign = compile_query(MODEL, {**query, "timeDimensions": [{"dimension": "events.ts",
                                                                 "granularity": got}]}).sql
    assert compiled.sql == benign


@SETTINGS
@given(limit=st.one_of(hostile_text, st.floats(), st.integers(max_value=-1), st.booleans(),
                       st.integers(min_value=50_001), st.lists(st.integers(), max_size=1)),
       key=st.sampled_from(["limit", "offset"]))
def test_hostile_limits_are_refused(limit, key):
    assume(not (key == "offset" and isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0))
    assert_refused({"measures": ["events.count"], key: limit})


@SETTINGS
@given(query=st.dictionaries(
    st.sampled_from(["measures", "dimensions", "timeDimensions", "filters", "segments", "order", "limit",
                     "offset", "timezone", "total", "ungrouped"]),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(), hostile_text,
                           st.sampled_from(["events.count", "events.category", "events.ts", "day", "equals",
                                            "contains", "asc", "member", "operator", "values", "dimension",
                                            "granularity", "dateRange", "and", "or"])),
                 lambda inner: st.one_of(st.lists(inner, max_size=3),
                                         st.dictionaries(st.sampled_from(
                                             ["member", "operator", "values", "dimension", "granularity",
                                              "dateRange", "and", "or", "events.count", "x"]), inner,
                                             max_size=3)),
                 max_leaves=8),
    max_size=4))
def test_arbitrary_json_queries_compile_or_raise_headless_errors(query):
    """Any JSON a client could send: either SQL that parses, or a HeadlessBIError; nothing else."""
    try:
        compiled = compile_query(MODEL, query)
    except HeadlessBIError:
        return
    sqlglot.parse_one(compiled.sql, dialect="duckdb")


def test_only_iana_timezone_names_compile():
    """zoneinfo also loads files that are not IANA zone names ('localtime', 'posixrules', 'right/…',
    'posix/…'); such a name must be refused when compiling, not sent to the database (DuckDB does not
    know them; PostgreSQL reads 'right/UTC' with leap seconds, 27 s off)."""
    accepted = []
    for tz in ["localtime", "posixrules", "right/UTC", "posix/Europe/Berlin", "Factory"]:
        try:
            compiled = compile_query(MODEL, {
                "measures": ["events.count"], "timezone": tz,
                "timeDimensions": [{"dimension": "events.ts", "granularity": "day"}]})
        except HeadlessBIError:
            continue
        if compiled.query.timezone not in TZ_NAMES:
            accepted.append(compiled.query.timezone)
    assert accepted == [], f"compiled with zone names that are not IANA zones: {accepted}"


# --- executed for real --------------------------------------------------------------------------------------

CATEGORIES = [
    "plain", "it's", "it''s", "'; DROP TABLE events; --", "a\\b", "a\\'b", "50%", "50% off", "50_off",
    "5000", "x!y", "x!%y", "%", "_", "!", "\\", "é", "日本語", "😀 party", "line\nbreak", "",
    "x' OR '1'='1", '"quoted"', "$$dollar$$", "{events.id}",
]


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory):
    path = str(tmp_path_factory.mktemp("hostile") / "hostile.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE TABLE events (id INTEGER, ts TIMESTAMP, ts_tz TIMESTAMPTZ, category VARCHAR, "
                "amount INTEGER)")
    con.executemany("INSERT INTO events VALUES (?, TIMESTAMP '2024-01-01', NULL, ?, 1)",
                    list(enumerate(CATEGORIES, start=1)))
    con.execute("INSERT INTO events VALUES (0, NULL, NULL, NULL, NULL)")
    con.execute("CREATE TABLE notes (id INTEGER, event_id INTEGER, body VARCHAR)")
    con.close()
    wh = DuckDBWarehouse(path, pool_size=2)
    plain = duckdb.connect(path)  # same process: shares the database instance with the warehouse
    yield wh, plain
    plain.close()
    wh.close()


def matching_ids(hostile_db, operator: str, value: str) -> tuple[set[int], set[int]]:
    wh, plain = hostile_db
    result = run_query(MODEL, wh, {"dimensions": ["events.id"],
                                   "filters": [{"member": "events.category", "operator": operator,
                                                "values": [value]}]})
    got = {r["events.id"] for r in result.data}
    where = {
        "equals": "category = ?",
        "notEquals": "(category <> ? OR category IS NULL)",
        "contains": "contains(lower(category), lower(?))",
        "startsWith": "starts_with(lower(category), lower(?))",
        "endsWith": "suffix(lower(category), lower(?))",
        "notContains": "(NOT contains(lower(category), lower(?)) OR category IS NULL)",
    }[operator]
    expected = {r[0] for r in plain.execute(f"SELECT id FROM events WHERE {where}", [value]).fetchall()}
    return got, expected


@pytest.mark.parametrize("operator", ["equals", "notEquals", "contains", "startsWith", "endsWith",
                                      "notContains"])
@pytest.mark.parametrize("value", [*CATEGORIES, "'", "''", "%_", "!%", "\\'", "x' OR '1'='1' --"])
def test_hostile_values_match_plain_parameterised_sql(hostile_db, operator, value):
    got, expected = matching_ids(hostile_db, operator, value)
    assert got == expected


_ascii = st.text(alphabet=st.sampled_from("ab'\"\\%_!;-* \n0x5é日😀"), max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), operator=st.sampled_from(["equals", "contains", "startsWith", "endsWith"]))
def test_random_values_match_plain_parameterised_sql(hostile_db, data, operator):
    source = data.draw(st.sampled_from(CATEGORIES))
    i, j = sorted(data.draw(st.tuples(st.integers(0, len(source)), st.integers(0, len(source)))))
    value = data.draw(st.one_of(st.just(source[i:j]), _ascii))
    got, expected = matching_ids(hostile_db, operator, value)
    assert got == expected


def test_tables_survive_the_hostile_values(hostile_db):
    wh, _ = hostile_db
    assert wh.execute("SELECT count(*) AS n FROM events").column(0)[0].as_py() == len(CATEGORIES) + 1
