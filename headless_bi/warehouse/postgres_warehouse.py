"""PostgreSQL as a warehouse (psycopg 3): pooled connections, per-query timeouts, Arrow results."""

from __future__ import annotations

import io
import json
import queue
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict

from headless_bi.errors import HeadlessBIError, QueryError, QueryTimeoutError

# Result column type OID → Arrow type, for the types whose Python values Arrow takes as they are.
_ARROW_BY_OID: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),
    700: pa.float32(),
    701: pa.float64(),
    18: pa.string(),
    19: pa.string(),
    25: pa.string(),
    1042: pa.string(),
    1043: pa.string(),
    17: pa.binary(),
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    1186: pa.duration("us"),
}
_NUMERIC, _UUID, _JSON, _JSONB = 1700, 2950, 114, 3802
_MAX_DECIMAL_PRECISION = 38


@dataclass
class _Conn:
    """A pooled connection and the statement_timeout it last set, to skip redundant SETs."""

    conn: psycopg.Connection
    timeout_ms: int | None = None


class PostgresWarehouse:
    """PostgreSQL behind the `Warehouse` interface.

    Connections are opened lazily up to `pool_size` and reused from a queue; each runs in
    autocommit mode with `TIME ZONE 'UTC'`, matching the DuckDB warehouse's session.
    """

    dialect = "postgres"

    def __init__(self, dsn: str, *, pool_size: int = 4, default_timeout_s: float = 30.0):
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.dsn = dsn
        self.default_timeout_s = default_timeout_s
        self._params = conninfo_to_dict(dsn)
        self._params.setdefault("connect_timeout", 10)  # libpq waits forever otherwise
        self._pool: queue.Queue[_Conn | None] = queue.Queue()
        for _ in range(pool_size):
            self._pool.put(None)  # a free slot; the connection is opened on first use
        self._closed = False

    def execute(self, sql: str, *, timeout_s: float | None = None) -> pa.Table:
        """Run `sql` (one statement, no parameters) and return all rows as Arrow.

        `timeout_s=None` uses the default limit, `0` means no limit; the server enforces it
        through `statement_timeout`.
        """
        limit = self.default_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit if limit and limit > 0 else None
        with self._connection(deadline, limit) as slot:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            timeout_ms = 0 if remaining is None else max(int(remaining * 1000), 1)
            try:
                with slot.conn.cursor() as cur:
                    if slot.timeout_ms != timeout_ms:
                        cur.execute(f"SET statement_timeout = {timeout_ms:d}")
                        slot.timeout_ms = timeout_ms
                    cur.execute(sql)  # type: ignore[arg-type]  # no params: '%' is sent as is
                    if cur.description is None:
                        return pa.table({})
                    return _to_arrow(cur.description, cur.fetchall())
            except psycopg.errors.QueryCanceled as exc:
                raise QueryTimeoutError(
                    f"Query exceeded the time limit of {limit:g} s and was cancelled."
                ) from exc
            except psycopg.Error as exc:
                raise QueryError(_message(exc)) from exc

    def tables(self) -> list[str]:
        """Tables and views on the search path, sorted; outside the current schema named `schema.table`."""
        return sorted(self.table_columns())

    def table_columns(self) -> dict[str, dict[str, str]]:
        """Table → column → PostgreSQL type (e.g. `numeric`), in column order."""
        result = self.execute(
            "SELECT table_schema, table_name, column_name, data_type, table_schema = current_schema() "
            "FROM information_schema.columns WHERE table_schema = ANY(current_schemas(false)) "
            "ORDER BY table_schema, table_name, ordinal_position"
        )
        out: dict[str, dict[str, str]] = {}
        for schema, table, column, data_type, is_current in zip(*result.to_pydict().values(), strict=True):
            name = table if is_current else f"{schema}.{table}"
            out.setdefault(name, {})[column] = data_type
        return out

    def load_parquet(self, table_name: str, parquet_path: str | Path, *, schema: str | None = None) -> int:
        """Create or replace `table_name` from a Parquet file and return its row count.

        Column types follow the Arrow schema (DECIMAL(p,s) → numeric(p,s), nested → jsonb);
        rows stream through `COPY … FROM STDIN (FORMAT csv)` in batches, all in one transaction
        so readers never see a half-loaded table.
        """
        parquet = pq.ParquetFile(parquet_path)
        fields = list(parquet.schema_arrow)
        target = pgsql.Identifier(schema, table_name) if schema else pgsql.Identifier(table_name)
        columns = pgsql.SQL(", ").join(
            pgsql.SQL("{} {}").format(pgsql.Identifier(f.name), pgsql.SQL(pg_type(f.type))) for f in fields
        )
        with self._connection(None, 0) as slot:
            try:
                with slot.conn.transaction(), slot.conn.cursor() as cur:
                    cur.execute("SET LOCAL statement_timeout = 0")
                    cur.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(target))
                    cur.execute(pgsql.SQL("CREATE TABLE {} ({})").format(target, columns))
                    copy_sql = pgsql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(target)
                    with cur.copy(copy_sql) as copy:
                        for batch in parquet.iter_batches(batch_size=65_536):
                            buffer = io.BytesIO()
                            pacsv.write_csv(
                                _csv_ready(batch), buffer, pacsv.WriteOptions(include_header=False)
                            )
                            copy.write(buffer.getvalue())
            except psycopg.Error as exc:
                raise QueryError(f"Cannot load {parquet_path} into {table_name}: {_message(exc)}") from exc
        return parquet.metadata.num_rows

    def ping(self, timeout_s: float = 2.0) -> None:
        """`SELECT 1` on a connection of its own, so a busy pool does not look like a dead server."""
        try:
            params = {**self._params, "connect_timeout": max(1, round(timeout_s))}
            with psycopg.connect(**params, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise QueryError(_message(exc)) from exc

    def close(self) -> None:
        """Close idle connections; connections in use are closed when returned."""
        self._closed = True
        while True:
            try:
                slot = self._pool.get_nowait()
            except queue.Empty:
                break
            if slot is not None:
                slot.conn.close()

    def __enter__(self) -> PostgresWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _connection(self, deadline: float | None, limit: float) -> Iterator[_Conn]:
        if self._closed:
            raise HeadlessBIError("The PostgreSQL warehouse is closed.")
        wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            slot = self._pool.get(timeout=wait)
        except queue.Empty:
            raise QueryTimeoutError(
                f"Query exceeded the time limit of {limit:g} s waiting for a free database connection."
            ) from None
        try:
            if slot is None or slot.conn.closed:
                slot = _Conn(self._connect())
            yield slot
        except BaseException:
            # A broken connection (server restart, network) is dropped; the slot reopens on next use.
            if slot is not None and slot.conn.broken:
                slot.conn.close()
                slot = None
            raise
        finally:
            if self._closed and slot is not None:
                slot.conn.close()
                slot = None
            self._pool.put(slot)

    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(**self._params, autocommit=True)
        except psycopg.Error as exc:
            raise HeadlessBIError(f"Cannot connect to PostgreSQL: {_message(exc)}") from exc
        conn.execute("SET TIME ZONE 'UTC'")
        return conn


def pg_type(arrow_type: pa.DataType) -> str:
    """The PostgreSQL column type that holds an Arrow type without loss (nested types as jsonb)."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        return pg_type(t.value_type)
    simple = [
        (pa.types.is_boolean, "boolean"),
        (lambda x: x in (pa.int8(), pa.int16(), pa.uint8()), "smallint"),
        (lambda x: x in (pa.int32(), pa.uint16()), "integer"),
        (lambda x: x in (pa.int64(), pa.uint32()), "bigint"),
        (lambda x: x == pa.uint64(), "numeric(20,0)"),
        (lambda x: x in (pa.float16(), pa.float32()), "real"),
        (pa.types.is_float64, "double precision"),
        (
            lambda x: pa.types.is_string(x) or pa.types.is_large_string(x) or pa.types.is_string_view(x),
            "text",
        ),
        (
            lambda x: (
                pa.types.is_binary(x)
                or pa.types.is_large_binary(x)
                or pa.types.is_fixed_size_binary(x)
                or pa.types.is_binary_view(x)
            ),
            "bytea",
        ),
        (pa.types.is_date, "date"),
        (pa.types.is_time, "time"),
        (pa.types.is_duration, "interval"),
        (pa.types.is_null, "text"),
    ]
    for test, name in simple:
        if test(t):
            return name
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    return "jsonb"


def _csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Recast the columns Arrow's CSV writer cannot render as PostgreSQL's CSV input expects."""
    arrays = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        t = field.type
        if pa.types.is_dictionary(t):
            column, t = column.cast(t.value_type), t.value_type
        if pa.types.is_float16(t):
            column = column.cast(pa.float32())
        elif pa.types.is_date64(t):
            column = column.cast(pa.date32())
        elif pg_type(t) == "bytea":
            column = pa.array(
                [None if v is None else "\\x" + v.hex() for v in column.to_pylist()], pa.string()
            )
        elif pa.types.is_duration(t):
            micros = pc.cast(column.cast(pa.duration("us")), pa.int64()).to_pylist()
            column = pa.array([None if v is None else f"{v} microseconds" for v in micros], pa.string())
        elif pg_type(t) == "jsonb":
            column = pa.array(
                [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()], pa.string()
            )
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _to_arrow(description: Sequence[psycopg.Column], rows: list[tuple[Any, ...]]) -> pa.Table:
    """Rows from psycopg → Arrow, typed from the result description rather than guessed from values."""
    names = [col.name for col in description]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in description]
    arrays = [_column(col, list(values)) for col, values in zip(description, columns, strict=True)]
    return pa.Table.from_arrays(arrays, names=names)


def _column(col: psycopg.Column, values: list[Any]) -> pa.Array:
    oid = col.type_code
    if oid in _ARROW_BY_OID:
        return pa.array(values, _ARROW_BY_OID[oid])
    if oid == _NUMERIC:
        return _numeric(col, values)
    if oid == _UUID:
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if oid in (_JSON, _JSONB):
        return pa.array([None if v is None else json.dumps(v) for v in values], pa.string())
    try:  # arrays and other types: let Arrow infer, else fall back to text
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _numeric(col: psycopg.Column, values: list[Any]) -> pa.Array:
    """numeric → decimal128: the declared (p,s) when there is one, else (38, widest scale seen).

    NaN/Infinity, or values too wide for 38 digits, fall back to float64.
    """
    if col.precision is not None and col.scale is not None and col.precision <= _MAX_DECIMAL_PRECISION:
        return pa.array(values, pa.decimal128(col.precision, col.scale))
    scale, int_digits = 0, 1
    for v in values:
        if v is None:
            continue
        if not isinstance(v, Decimal) or not v.is_finite():
            return pa.array([None if x is None else float(x) for x in values], pa.float64())
        _, digits, exponent = v.as_tuple()
        scale = max(scale, -int(exponent))
        int_digits = max(int_digits, len(digits) + int(exponent))
    if scale + int_digits > _MAX_DECIMAL_PRECISION:
        return pa.array([None if x is None else float(x) for x in values], pa.float64())
    return pa.array(values, pa.decimal128(_MAX_DECIMAL_PRECISION, scale))


def _message(exc: psycopg.Error) -> str:
    """PostgreSQL's own message (with its LINE/caret context), without the Python exception class."""
    return str(exc).strip() or type(exc).__name__
