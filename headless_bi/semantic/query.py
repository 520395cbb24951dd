"""Cube's query JSON → a validated `Query`: members resolved, values typed, time ranges fixed.

Everything a user can get wrong is caught here with the member and the value named, so the planner
and the SQL builder only ever see well-formed input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Union

from headless_bi.errors import LimitExceededError, QueryError, did_you_mean
from headless_bi.semantic.model import Dimension, ResolvedMember, SemanticModel
from headless_bi.semantic.time import (
    DateRange,
    check_granularity,
    check_timezone,
    parse_timestamp_value,
    resolve_date_range,
)

QUERY_KEYS = (
    "measures",
    "dimensions",
    "timeDimensions",
    "filters",
    "segments",
    "order",
    "limit",
    "offset",
    "timezone",
    "total",
    "renewQuery",
    "ungrouped",
    "responseFormat",
)
VALUE_OPERATORS = {
    "equals",
    "notEquals",
    "contains",
    "notContains",
    "startsWith",
    "notStartsWith",
    "endsWith",
    "notEndsWith",
    "gt",
    "gte",
    "lt",
    "lte",
}
DATE_OPERATORS = {
    "inDateRange",
    "notInDateRange",
    "beforeDate",
    "beforeOrOnDate",
    "afterDate",
    "afterOrOnDate",
}
OPERATORS = VALUE_OPERATORS | DATE_OPERATORS | {"set", "notSet"}
STRING_ONLY = {"contains", "notContains", "startsWith", "notStartsWith", "endsWith", "notEndsWith"}
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 50_000


@dataclass(frozen=True)
class OutputDimension:
    """A dimension in the result: plain, or a time dimension bucketed by `granularity`."""

    key: str
    ref: ResolvedMember
    granularity: str | None = None


@dataclass(frozen=True)
class Condition:
    """One filter. `values` are typed: str, float/int, bool, None, naive datetimes or a DateRange."""

    ref: ResolvedMember
    operator: str
    values: tuple[Any, ...] = ()
    from_time_dimension: bool = False  # a timeDimensions dateRange (rolling windows build on it)


@dataclass(frozen=True)
class Group:
    kind: str  # "and" | "or"
    children: tuple[FilterNode, ...]


FilterNode = Union[Condition, Group]  # noqa: UP007 - a runtime alias used in isinstance-free code


@dataclass(frozen=True)
class Query:
    measures: tuple[ResolvedMember, ...]
    dimensions: tuple[OutputDimension, ...]
    where: tuple[FilterNode, ...]
    having: tuple[FilterNode, ...]
    segments: tuple[ResolvedMember, ...]
    order: tuple[tuple[str, bool], ...]  # (output key, descending)
    limit: int
    offset: int
    timezone: str
    total: bool = False
    ungrouped: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC), compare=False)

    @property
    def output_keys(self) -> list[str]:
        return [d.key for d in self.dimensions] + [m.name for m in self.measures]


def parse_query(
    model: SemanticModel,
    raw: Any,
    *,
    now: datetime | None = None,
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
) -> Query:
    if not isinstance(raw, dict):
        raise QueryError(f"a query must be a JSON object, not {type(raw).__name__}")
    for key in raw:
        if key not in QUERY_KEYS:
            raise QueryError(f"unknown query key '{key}'." + did_you_mean(key, QUERY_KEYS), value=key)
    timezone = check_timezone(raw.get("timezone") or "UTC")
    now = now or datetime.now(UTC)
    parser = _Parser(model, timezone, now)
    measures = tuple(parser.member(name, "measure", "measures") for name in _names(raw, "measures"))
    dimensions = [parser.dimension(name) for name in _names(raw, "dimensions")]
    where: list[FilterNode] = []
    for item in _list(raw, "timeDimensions"):
        dim, condition = parser.time_dimension(item)
        if dim and dim.key not in {d.key for d in dimensions}:
            dimensions.append(dim)
        if condition:
            where.append(condition)
    having: list[FilterNode] = []
    for item in _list(raw, "filters"):
        node = parser.filter(item)
        (having if parser.is_measure_filter(node) else where).append(node)
    segments = tuple(parser.member(n, "segment", "segments") for n in _names(raw, "segments"))
    if not measures and not dimensions:
        raise QueryError(
            "the query asks for nothing: give at least one measure, dimension or "
            "timeDimension with a granularity"
        )
    keys = [d.key for d in dimensions] + [m.name for m in measures]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise QueryError(f"'{duplicate}' appears twice in the query", member=duplicate)
    return Query(
        measures=measures,
        dimensions=tuple(dimensions),
        where=tuple(where),
        having=tuple(having),
        segments=segments,
        order=parser.order(raw.get("order"), dimensions, measures),
        limit=_limit(raw.get("limit"), default_limit, max_limit),
        offset=_count(raw.get("offset"), "offset"),
        timezone=timezone,
        total=_flag(raw, "total"),
        ungrouped=_flag(raw, "ungrouped"),
        now=now,
    )


def parse_filter(
    model: SemanticModel,
    item: Any,
    *,
    timezone: str = "UTC",
    now: datetime | None = None,
    lookup: Callable[[str], ResolvedMember] | None = None,
) -> FilterNode:
    """One filter in the query format. `lookup` replaces the model's member resolution: access policies
    filter on members their users may not query (a private `tenant_id`), so they resolve their own."""
    return _Parser(model, timezone, now or datetime.now(UTC), lookup).filter(item)


class _Parser:
    def __init__(
        self,
        model: SemanticModel,
        timezone: str,
        now: datetime,
        lookup: Callable[[str], ResolvedMember] | None = None,
    ):
        self.model = model
        self.timezone = timezone
        self.now = now
        self.lookup = lookup

    def member(self, name: Any, kind: str, where: str) -> ResolvedMember:
        if not isinstance(name, str):
            raise QueryError(f"{where}: member names are strings, not {name!r}", value=name)
        return self.model.resolve(name, expect=kind, where=where)

    def dimension(self, name: Any) -> OutputDimension:
        """A plain dimension, or `cube.time_dimension.granularity` as Cube's REST API also accepts."""
        if isinstance(name, str) and name.count(".") == 2:
            base, _, granularity = name.rpartition(".")
            ref = self.member(base, "dimension", "dimensions")
            self._require_time(ref, "dimensions")
            granularity = check_granularity(granularity, base)
            return OutputDimension(f"{ref.name}.{granularity}", ref, granularity)
        ref = self.member(name, "dimension", "dimensions")
        return OutputDimension(ref.name, ref)

    def time_dimension(self, item: Any) -> tuple[OutputDimension | None, Condition | None]:
        if not isinstance(item, dict) or "dimension" not in item:
            raise QueryError(f"timeDimensions: each entry needs a 'dimension', got {item!r}", value=item)
        unknown = set(item) - {"dimension", "granularity", "dateRange", "compareDateRange"}
        if unknown:
            key = sorted(unknown)[0]
            raise QueryError(
                f"timeDimensions: unknown key '{key}'."
                + did_you_mean(key, ["dimension", "granularity", "dateRange"]),
                value=key,
            )
        if "compareDateRange" in item:
            raise QueryError(
                "timeDimensions: compareDateRange is not supported; send one query per range",
                member=item.get("dimension"),
            )
        ref = self.member(item["dimension"], "dimension", "timeDimensions")
        self._require_time(ref, "timeDimensions")
        dim = None
        if item.get("granularity") is not None:
            granularity = check_granularity(item["granularity"], ref.name)
            dim = OutputDimension(f"{ref.name}.{granularity}", ref, granularity)
        condition = None
        if item.get("dateRange") is not None:
            date_range = resolve_date_range(
                item["dateRange"], timezone=self.timezone, now=self.now, member=ref.name
            )
            condition = Condition(ref, "inDateRange", (date_range,), from_time_dimension=True)
        return dim, condition

    def filter(self, item: Any) -> FilterNode:
        if not isinstance(item, dict):
            raise QueryError(f"filters: each filter is an object, got {item!r}", value=item)
        for kind in ("and", "or"):
            if kind in item:
                if len(item) != 1 or not isinstance(item[kind], list) or not item[kind]:
                    raise QueryError(f"filters: '{kind}' takes a non-empty list of filters and nothing else")
                children = tuple(self.filter(child) for child in item[kind])
                group = Group(kind, children)
                self.is_measure_filter(group)  # rejects mixing measures and dimensions
                return group
        name = item.get("member", item.get("dimension"))
        if name is None:
            raise QueryError(f"filters: a filter needs 'member' (or 'and'/'or'), got {item!r}", value=item)
        unknown = set(item) - {"member", "dimension", "operator", "values"}
        if unknown:
            key = sorted(unknown)[0]
            raise QueryError(
                f"filters on '{name}': unknown key '{key}'."
                + did_you_mean(key, ["member", "operator", "values"]),
                member=str(name),
                value=key,
            )
        ref = self._filter_member(name)
        operator = item.get("operator")
        if not isinstance(operator, str) or operator not in OPERATORS:
            hint = (
                did_you_mean(str(operator), sorted(OPERATORS))
                or f" Use one of: {', '.join(sorted(OPERATORS))}."
            )
            raise QueryError(
                f"filter on '{ref.name}': unknown operator {operator!r}.{hint}",
                member=ref.name,
                value=operator,
            )
        return Condition(ref, operator, self._values(ref, operator, item.get("values")))

    def _filter_member(self, name: Any) -> ResolvedMember:
        if not isinstance(name, str):
            raise QueryError(f"filters: member names are strings, not {name!r}", value=name)
        ref = self.lookup(name) if self.lookup else self.model.resolve(name, where="filters")
        if ref.kind == "segment":
            raise QueryError(f"'{name}' is a segment; put it under segments, not filters", member=name)
        return ref

    def _values(self, ref: ResolvedMember, operator: str, values: Any) -> tuple[Any, ...]:
        name = ref.name
        if operator in ("set", "notSet"):
            if values not in (None, []):
                raise QueryError(f"filter on '{name}': operator {operator} takes no values", member=name)
            return ()
        if not isinstance(values, list) or not values:
            raise QueryError(
                f"filter on '{name}': operator {operator} needs a non-empty 'values' list, got {values!r}",
                member=name,
                value=values,
            )
        kind = ref.member.type if isinstance(ref.member, Dimension) else "number"
        if operator in DATE_OPERATORS:
            self._require_time(ref, f"filter {operator}")
            if operator in ("inDateRange", "notInDateRange"):
                return (
                    resolve_date_range(
                        values, timezone=self.timezone, now=self.now, member=name, field=f"{operator} values"
                    ),
                )
            if len(values) != 1:
                raise QueryError(
                    f"filter on '{name}': {operator} takes one value, got {values!r}",
                    member=name,
                    value=values,
                )
            # The value's whole extent: afterDate '2024-03-10' is after that day, as in Cube.
            parse_timestamp_value(values[0], timezone=self.timezone, member=name, field=f"{operator} value")
            return (
                resolve_date_range(
                    [values[0], values[0]],
                    timezone=self.timezone,
                    now=self.now,
                    member=name,
                    field=f"{operator} value",
                ),
            )
        if operator in STRING_ONLY and kind != "string":
            raise QueryError(
                f"filter on '{name}': operator {operator} needs a string member, but '{name}' is a {kind}",
                member=name,
                value=operator,
            )
        if operator in ("gt", "gte", "lt", "lte") and len(values) != 1:
            raise QueryError(
                f"filter on '{name}': {operator} takes one value, got {values!r}", member=name, value=values
            )
        return tuple(self._typed(ref, kind, operator, v) for v in values)

    def _typed(self, ref: ResolvedMember, kind: str, operator: str, value: Any) -> Any:
        name = ref.name
        if value is None:
            if operator in ("equals", "notEquals"):
                return None
            raise QueryError(f"filter on '{name}': {operator} cannot compare with null", member=name)
        if kind == "number":
            number = _number(value)
            if number is None:
                raise QueryError(f"filter on '{name}': {value!r} is not a number", member=name, value=value)
            return number
        if kind == "boolean":
            text = str(value).strip().lower()
            if text not in ("true", "false", "1", "0"):
                raise QueryError(
                    f"filter on '{name}': {value!r} is not a boolean (true/false)", member=name, value=value
                )
            return text in ("true", "1")
        if kind == "time":
            if operator in STRING_ONLY:
                raise QueryError(f"filter on '{name}': {operator} does not apply to a time", member=name)
            local = parse_timestamp_value(
                value, timezone=self.timezone, member=name, field=f"{operator} value"
            )
            resolve_date_range([value, value], timezone=self.timezone, now=self.now, member=name)  # UTC-safe
            return local
        if isinstance(value, bool | dict | list):
            raise QueryError(f"filter on '{name}': {value!r} is not a string", member=name, value=value)
        return str(value)

    def _require_time(self, ref: ResolvedMember, where: str) -> None:
        if not isinstance(ref.member, Dimension) or ref.member.type != "time":
            kind = ref.member.type if isinstance(ref.member, Dimension) else ref.kind
            raise QueryError(f"{where}: '{ref.name}' is a {kind}, not a time dimension", member=ref.name)

    @staticmethod
    def is_measure_filter(node: FilterNode) -> bool:
        kinds = set(_leaf_kinds(node))
        if len(kinds) > 1:
            raise QueryError(
                "a filter group cannot mix measures and dimensions: measure filters apply "
                "after aggregation, dimension filters before; put them in separate filters"
            )
        return kinds == {"measure"}

    def order(
        self, raw: Any, dimensions: list[OutputDimension], measures: tuple[ResolvedMember, ...]
    ) -> tuple[tuple[str, bool], ...]:
        if raw is None:
            return _default_order(dimensions, measures)
        if isinstance(raw, dict):
            pairs = list(raw.items())
        elif isinstance(raw, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in raw):
            pairs = [tuple(p) for p in raw]
        else:
            raise QueryError(
                f"order must be an object or a list of [member, 'asc'|'desc'] pairs, got {raw!r}", value=raw
            )
        keys = {d.key: d.key for d in dimensions} | {m.name: m.name for m in measures}
        # A bucketed time may be ordered by its plain name, unless the plain value is asked for too.
        keys |= {d.ref.name: d.key for d in dimensions if d.granularity and d.ref.name not in keys}
        out = []
        for name, direction in pairs:
            if not isinstance(name, str) or name not in keys:
                raise QueryError(
                    f"order: '{name}' is not in the query's measures or dimensions."
                    + did_you_mean(str(name), keys),
                    member=str(name),
                )
            if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
                raise QueryError(
                    f"order: direction for '{name}' must be 'asc' or 'desc', got {direction!r}",
                    member=name,
                    value=direction,
                )
            out.append((keys[name], direction.lower() == "desc"))
        return tuple(out)


def _leaf_kinds(node: FilterNode) -> list[str]:
    if isinstance(node, Condition):
        return ["measure" if node.ref.kind == "measure" else "dimension"]
    return [kind for child in node.children for kind in _leaf_kinds(child)]


def _default_order(dimensions: list[OutputDimension], measures: tuple[ResolvedMember, ...]):
    """Cube's default: first bucketed time ascending, else first measure descending, else first dimension."""
    timed = [d for d in dimensions if d.granularity]
    if timed:
        return ((timed[0].key, False),)
    if measures:
        return ((measures[0].name, True),)
    if dimensions:
        return ((dimensions[0].key, False),)
    return ()


def _names(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise QueryError(f"'{key}' must be a list of member names, got {value!r}", value=value)
    return value


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise QueryError(f"'{key}' must be a list, got {value!r}", value=value)
    return value


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 2**63 else None  # what a BIGINT holds; larger is not a key or amount
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    try:
        text = str(value).strip()
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if text.lstrip("-").isdigit():
        return _number(int(text))
    return number


def _count(value: Any, key: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise QueryError(f"'{key}' must be a non-negative integer below 2^63, got {value!r}", value=value)
    return value


def _flag(raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise QueryError(f"'{key}' must be true or false, got {value!r}", value=value)
    return value


def _limit(value: Any, default: int, maximum: int) -> int:
    if value is None:
        return default
    limit = _count(value, "limit")
    if limit > maximum:
        raise LimitExceededError(f"limit {limit} is above the maximum of {maximum} rows")
    return limit


__all__ = ["Condition", "DateRange", "FilterNode", "Group", "OutputDimension", "Query", "parse_query"]
