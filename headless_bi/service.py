"""Run a semantic query end to end: compile, execute on a warehouse, shape the result once.

Every entry point (CLI, GraphQL, later exports and ask) calls `run_query`, so the flow
query → plan → SQL → Arrow → response has one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from headless_bi.errors import HeadlessBIError
from headless_bi.result_cache import ResultCache
from headless_bi.semantic.compiler import CompiledQuery, MemberAnnotation, compile_query, render
from headless_bi.semantic.model import SemanticModel
from headless_bi.warehouse.base import Warehouse

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # on millisecond timestamps %S prints "SS.fff", as Cube does


@dataclass
class QueryResult:
    compiled: CompiledQuery
    table: pa.Table  # exact types, columns keyed like the rows
    total: int | None = None
    _rows: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def sql(self) -> str:
        return self.compiled.sql

    @property
    def data(self) -> list[dict[str, Any]]:
        """Rows keyed `cube.member` (and `cube.member.granularity`), JSON-ready, converted once."""
        if self._rows is None:
            self._rows = to_rows(self.table, self.compiled.annotations)
        return self._rows

    @property
    def annotation(self) -> dict[str, dict[str, Any]]:
        return annotation_dict(self.compiled.annotations)

    def to_json_dict(self, *, include_sql: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"data": self.data, "annotation": self.annotation}
        if self.total is not None:
            out["total"] = self.total
        if include_sql:
            out["sql"] = self.sql
        return out


_BOUND: dict[tuple[int, int], SemanticModel] = {}


def bind_model(model: SemanticModel, warehouse: Warehouse) -> SemanticModel:
    """`model` knowing which time dimensions are DATE-typed in this warehouse; cached per pair."""
    key = (id(model), id(warehouse))
    bound = _BOUND.get(key)
    if bound is None or bound.version != model.version:
        bound = model.with_calendar_dates(calendar_dates(model, warehouse))
        if len(_BOUND) > 16:
            _BOUND.clear()
        _BOUND[key] = bound
    return bound


def calendar_dates(model: SemanticModel, warehouse: Warehouse) -> frozenset[str]:
    """Time dimensions whose SQL yields a DATE, asked of the warehouse with `SELECT expr ... LIMIT 0`.

    Asking the database covers `sql:` cubes and expressions such as `CAST(ts AS DATE)`; a dimension
    that reads other cubes or fails to probe keeps Cube's convention (a UTC instant).
    """
    found = set()
    for cube in model.cubes.values():
        for dim in cube.dimensions.values():
            if dim.type != "time" or dim.expression is None or not dim.cubes <= {cube.name}:
                continue
            source = cube.source.copy()
            alias = exp.TableAlias(this=exp.to_identifier(cube.name, quoted=True))
            if isinstance(source, exp.Table):
                source.set("alias", alias)
            else:
                source = exp.Subquery(this=source.this, alias=alias)
            probe = exp.select(exp.alias_(dim.expression.copy(), "v")).from_(source).limit(0)
            try:
                table = warehouse.execute(render(probe, warehouse.dialect))
            except HeadlessBIError:
                continue
            if pa.types.is_date(table.schema.field(0).type):
                found.add(dim.path)
    return frozenset(found)


def run_query(
    model: SemanticModel,
    warehouse: Warehouse,
    query: dict[str, Any],
    *,
    now: datetime | None = None,
    timeout_s: float | None = None,
    cache: ResultCache | None = None,
    **compile_options: Any,
) -> QueryResult:
    compiled = compile_query(
        bind_model(model, warehouse), query, dialect=warehouse.dialect, now=now, **compile_options
    )
    key = None
    if cache is not None and cache.enabled:
        security = compile_options.get("security")
        scope = "operator" if security is None else security.policy_key
        key = (str(id(warehouse)), model.version, scope, compiled.sql, compiled.total_sql or "")
        hit = None if isinstance(query, dict) and query.get("renewQuery") else cache.get(key)
        if hit is not None:
            return QueryResult(compiled, hit.table, hit.total)
    table = warehouse.execute(compiled.sql, timeout_s=timeout_s)
    total = None
    if compiled.total_sql is not None:
        total = int(warehouse.execute(compiled.total_sql, timeout_s=timeout_s).column(0)[0].as_py())
    if key is not None:
        cache.put(key, table, total)  # type: ignore[union-attr]
    return QueryResult(compiled, table, total)


def to_rows(table: pa.Table, annotations: tuple[MemberAnnotation, ...]) -> list[dict[str, Any]]:
    """Arrow → list of dicts: decimals as numbers, bucketed times as Cube's ISO strings."""
    columns = {}
    for name in table.column_names:
        columns[name] = _json_ready(table.column(name))
    rows = pa.table(columns).to_pylist()
    plain_keys = {a.key.rsplit(".", 1)[0]: a.key for a in annotations if a.granularity}
    if plain_keys:
        taken = set(table.column_names)
        extra = {plain: key for plain, key in plain_keys.items() if plain not in taken}
        for row in rows:
            for plain, key in extra.items():
                row[plain] = row[key]
    return rows


def _json_ready(column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_decimal(kind):
        if kind.scale == 0:
            try:
                return pc.cast(column, pa.int64())
            except pa.ArrowInvalid:
                pass
        # Through the exact decimal text: Arrow's decimal→double cast is not correctly rounded
        # (122790.43 would come out as 122790.43000000001); parsing the text is.
        return pc.cast(pc.cast(column, pa.string()), pa.float64())
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            column = pc.cast(column, pa.timestamp(kind.unit))
        column = pc.cast(column, pa.timestamp("ms"), safe=False)
        return pc.strftime(column, format=TIME_FORMAT)
    return column


def annotation_dict(annotations: tuple[MemberAnnotation, ...]) -> dict[str, dict[str, Any]]:
    """Cube's annotation shape: members grouped by kind, each with title, shortTitle, type, format."""
    out: dict[str, dict[str, Any]] = {"measures": {}, "dimensions": {}, "segments": {}, "timeDimensions": {}}
    for a in annotations:
        entry: dict[str, Any] = {"title": a.title, "shortTitle": a.short_title, "type": a.type}
        if a.format:
            entry["format"] = a.format
        section = {"timeDimension": "timeDimensions", "measure": "measures"}.get(a.kind, "dimensions")
        out[section][a.key] = entry
        if a.granularity:
            out[section][a.key.rsplit(".", 1)[0]] = entry
    return out
