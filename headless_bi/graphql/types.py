"""The GraphQL types that do not depend on the model: scalars, filters, time values, `load`, `meta`.

Names follow Cube's GraphQL API (`StringFilter`, `FloatFilter`, `DateTimeFilter`, `OrderBy`,
`TimeDimension`, `DateTime`) so Cube front-ends port unchanged; what Cube lacks (`BooleanFilter`,
`ZonedTime`, the generic `load`) is additive.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import NewType

import strawberry
from strawberry import UNSET
from strawberry.scalars import JSON

DateTime = NewType("DateTime", str)


def serialize_datetime(value: object) -> str:
    """Strings pass through (they are formatted by `reshape`); datetimes become UTC ISO like Cube's."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


DATETIME_SCALAR = strawberry.scalar(
    name="DateTime",
    description="An ISO 8601 date-time with a UTC offset, e.g. 2024-03-01T00:00:00.000Z.",
    serialize=serialize_datetime,
    parse_value=str,
)

# -- typed filters (Cube's, plus BooleanFilter) ------------------------------------------------


@strawberry.input(description="Filter on a string dimension. Operators in one object are ANDed.")
class StringFilter:
    equals: str | None = UNSET
    notEquals: str | None = UNSET
    in_: list[str | None] | None = strawberry.field(name="in", default=UNSET)
    notIn: list[str | None] | None = UNSET
    contains: list[str] | None = strawberry.field(
        default=UNSET, description="Case-insensitive substring; several values are ORed."
    )
    notContains: list[str] | None = UNSET
    startsWith: list[str] | None = UNSET
    notStartsWith: list[str] | None = UNSET
    endsWith: list[str] | None = UNSET
    notEndsWith: list[str] | None = UNSET
    set: bool | None = strawberry.field(default=UNSET, description="true: IS NOT NULL, false: IS NULL.")


@strawberry.input(
    description="Filter on a number dimension or a measure (measures filter after aggregation)."
)
class FloatFilter:
    equals: float | None = UNSET
    notEquals: float | None = UNSET
    in_: list[float | None] | None = strawberry.field(name="in", default=UNSET)
    notIn: list[float | None] | None = UNSET
    gt: float | None = UNSET
    gte: float | None = UNSET
    lt: float | None = UNSET
    lte: float | None = UNSET
    set: bool | None = strawberry.field(default=UNSET, description="true: IS NOT NULL, false: IS NULL.")


@strawberry.input(description="Filter on a boolean dimension (headless-bi; Cube types booleans as strings).")
class BooleanFilter:
    equals: bool | None = UNSET
    notEquals: bool | None = UNSET
    set: bool | None = strawberry.field(default=UNSET, description="true: IS NOT NULL, false: IS NULL.")


@strawberry.input(
    description="Filter on a time dimension. Values are dates or timestamps read in the query's time "
    "zone; date ranges also take relative strings such as 'last 7 days' or 'this quarter'."
)
class DateTimeFilter:
    equals: list[str] | None = UNSET
    notEquals: list[str] | None = UNSET
    in_: list[str] | None = strawberry.field(name="in", default=UNSET)
    notIn: list[str] | None = UNSET
    inDateRange: list[str] | None = strawberry.field(
        default=UNSET, description="[from, to] (inclusive days), or one relative range like 'last 7 days'."
    )
    notInDateRange: list[str] | None = UNSET
    beforeDate: str | None = UNSET
    beforeOrOnDate: str | None = UNSET
    afterDate: str | None = UNSET
    afterOrOnDate: str | None = UNSET
    set: bool | None = strawberry.field(default=UNSET, description="true: IS NOT NULL, false: IS NULL.")


@strawberry.enum(description="Sort direction.")
class OrderBy(Enum):
    asc = "asc"
    desc = "desc"


# -- time values ---------------------------------------------------------------------------------

_BUCKET = "Start of the {} bucket in the query's time zone, written as a UTC instant (as Cube does)."


@strawberry.type(
    description="The values of a time dimension in the query's time zone, written as wall-clock times "
    "with their UTC offset (e.g. 2024-03-31T00:00:00.000+02:00). headless-bi extension: Cube's "
    "TimeDimension fields are UTC instants, so a client had to know the zone to show the bucket."
)
class ZonedTime:
    timezone: str = strawberry.field(description="The query's IANA time zone.")
    value: DateTime | None = strawberry.field(default=None, description="The time itself, not bucketed.")
    second: DateTime | None = None
    minute: DateTime | None = None
    hour: DateTime | None = None
    day: DateTime | None = None
    week: DateTime | None = strawberry.field(default=None, description="Weeks start on Monday.")
    month: DateTime | None = None
    quarter: DateTime | None = None
    year: DateTime | None = None


@strawberry.type(
    description="A time dimension: select `value` for the raw time or one or more granularities, "
    "each becoming a bucket of the query. `zoned` gives the same values with the query zone's offset."
)
class TimeDimension:
    value: DateTime | None = strawberry.field(
        default=None, description="The time itself, not bucketed, as a UTC instant."
    )
    second: DateTime | None = strawberry.field(default=None, description=_BUCKET.format("second"))
    minute: DateTime | None = strawberry.field(default=None, description=_BUCKET.format("minute"))
    hour: DateTime | None = strawberry.field(default=None, description=_BUCKET.format("hour"))
    day: DateTime | None = strawberry.field(default=None, description=_BUCKET.format("day"))
    week: DateTime | None = strawberry.field(default=None, description=_BUCKET.format("week (Monday)"))
    month: DateTime | None = strawberry.field(default=None, description=_BUCKET.format("month"))
    quarter: DateTime | None = strawberry.field(default=None, description=_BUCKET.format("quarter"))
    year: DateTime | None = strawberry.field(default=None, description=_BUCKET.format("year"))
    zoned: ZonedTime | None = strawberry.field(
        default=None,
        description="The selected values as wall-clock times in the query's time zone with UTC offset.",
    )


GRANULARITY_FIELDS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")

# -- the generic query -------------------------------------------------------------------------


@strawberry.input(description="One entry of Cube's `timeDimensions`.")
class TimeDimensionInput:
    dimension: str
    granularity: str | None = strawberry.field(
        default=UNSET, description="second, minute, hour, day, week, month, quarter or year."
    )
    dateRange: list[str] | None = strawberry.field(
        default=UNSET,
        description="[from, to] or one relative range; a bare string is accepted too "
        '(GraphQL reads it as a one-element list), so Cube\'s "dateRange": "last 7 days" works as is.',
    )


@strawberry.input(
    description="A filter of Cube's query JSON: `member` + `operator` + `values`, or exactly one of "
    "`and` / `or` holding nested filters."
)
class FilterInput:
    member: str | None = UNSET
    dimension: str | None = strawberry.field(default=UNSET, description="Cube's older name for `member`.")
    operator: str | None = strawberry.field(
        default=UNSET, description="equals, notEquals, contains, gt, inDateRange, set, ... (see docs)."
    )
    values: list[str | None] | None = UNSET
    and_: list[FilterInput] | None = strawberry.field(name="and", default=UNSET)
    or_: list[FilterInput] | None = strawberry.field(name="or", default=UNSET)


@strawberry.input(description="One sort key, in Cube's normalized order form.")
class OrderInput:
    id: str = strawberry.field(description="A member of the query, e.g. orders.count.")
    desc: bool = False


@strawberry.input(
    description="Cube's query JSON as a typed input: the same keys and meanings; `order` is a list of "
    "{id, desc} (Cube's normalized form) because GraphQL inputs cannot be maps with free keys."
)
class QueryInput:
    measures: list[str] | None = UNSET
    dimensions: list[str] | None = UNSET
    timeDimensions: list[TimeDimensionInput] | None = UNSET
    filters: list[FilterInput] | None = UNSET
    segments: list[str] | None = UNSET
    order: list[OrderInput] | None = strawberry.field(
        default=UNSET, description="Sort keys in priority order; omit for Cube's default order."
    )
    limit: int | None = UNSET
    offset: int | None = UNSET
    timezone: str | None = UNSET
    total: bool | None = UNSET
    ungrouped: bool | None = UNSET
    renewQuery: bool | None = UNSET


@strawberry.type(description="How to show one result column.")
class Column:
    key: str = strawberry.field(description="The row key: cube.member or cube.member.granularity.")
    kind: str = strawberry.field(description="measure, dimension or timeDimension.")
    title: str
    shortTitle: str
    type: str = strawberry.field(description="number, string, boolean or time.")
    format: str | None = None
    granularity: str | None = None


@strawberry.type(name="QueryResult", description="The result of `load`.")
class LoadResult:
    data: JSON = strawberry.field(description="Rows keyed cube.member (and cube.member.granularity).")
    annotation: JSON = strawberry.field(
        description="Cube's annotation object: measures, dimensions, segments, timeDimensions by key."
    )
    columns: list[Column] = strawberry.field(description="The annotation as a typed list, in column order.")
    total: int | None = strawberry.field(default=None, description="Row count without limit, if asked.")
    sql: str | None = strawberry.field(default=None, description="The SQL run, for roles allowed to see it.")


@strawberry.type(description="The answer to a question in plain language (`ask`).")
class Answer:
    question: str
    query: JSON | None = strawberry.field(
        description="The semantic query the question became (Cube query JSON); null when it needs clarifying."
    )
    restatement: str = strawberry.field(description="The query read back in plain words.")
    confidence: float = strawberry.field(description="0 to 1; under 0.6, check the alternatives.")
    data: JSON = strawberry.field(description="Rows keyed like `load`'s data.")
    columns: list[Column]
    chart: str = strawberry.field(description="Suggested chart: number, bar, line, pie or table.")
    narrative: str = strawberry.field(description="A short summary of the result in plain language.")
    alternatives: JSON = strawberry.field(
        description="Other readings ({query, restatement}) or a question back ({clarification, suggestions})."
    )
    clarification: str | None = strawberry.field(
        default=None, description="Set when the question cannot be answered without asking back."
    )
    titles: JSON = strawberry.field(description="Title of every member of `query`, for labels.")
    comparison: JSON | None = strawberry.field(
        default=None, description="For questions such as 'vs last year': {label, query, data}."
    )
    sql: str | None = strawberry.field(default=None, description="The SQL run, for roles allowed to see it.")


# -- catalog -------------------------------------------------------------------------------------


@strawberry.enum(description="What a member is.")
class MemberKind(Enum):
    measure = "measure"
    dimension = "dimension"
    segment = "segment"


@strawberry.type(description="A measure, dimension or segment as an API client sees it.")
class MemberMeta:
    name: str = strawberry.field(description="Full name, cube.member: what queries use.")
    kind: MemberKind
    type: str | None = strawberry.field(
        description="Dimensions: string, number, boolean or time. Measures: number. Segments: null."
    )
    aggType: str | None = strawberry.field(description="Measures: count, sum, avg, ... as modelled.")
    title: str = strawberry.field(description="Cube or view title followed by the member title.")
    shortTitle: str
    description: str | None
    format: str | None
    synonyms: list[str] = strawberry.field(description="Other words users use for it (meta.synonyms).")
    primaryKey: bool
    granularities: list[str] = strawberry.field(description="Time dimensions: the granularities offered.")


@strawberry.type(description="A cube or a view with its public members.")
class CubeMeta:
    name: str
    type: str = strawberry.field(description="cube or view.")
    title: str
    description: str | None
    synonyms: list[str]
    connectedComponent: int | None = strawberry.field(
        description="Cubes with the same number can be queried together (they are joined); null for views."
    )
    members: list[MemberMeta]

    @strawberry.field(description="The measures only.")
    def measures(self) -> list[MemberMeta]:
        return [m for m in self.members if m.kind is MemberKind.measure]

    @strawberry.field(description="The dimensions only.")
    def dimensions(self) -> list[MemberMeta]:
        return [m for m in self.members if m.kind is MemberKind.dimension]

    @strawberry.field(description="The segments only.")
    def segments(self) -> list[MemberMeta]:
        return [m for m in self.members if m.kind is MemberKind.segment]


@strawberry.type(description="The semantic model: everything an API client may query.")
class Meta:
    version: str
    cubes: list[CubeMeta] = strawberry.field(description="Public cubes, then public views.")


# -- live and admin ------------------------------------------------------------------------------


@strawberry.type(description="One refresh of a live query.")
class LiveUpdate:
    data: JSON = strawberry.field(description="Rows keyed like `load`'s data.")
    refreshedAt: DateTime


@strawberry.type(description="The model version now served.")
class ReloadResult:
    version: str
    cubes: list[str]
    views: list[str]
