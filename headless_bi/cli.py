"""The `headless-bi` command line: load data, check and compile models, run queries.

Each subcommand is one small function taking the parsed arguments and returning an exit code.
Core modules are imported inside those functions so `--help` stays fast and this module imports
even when an optional part is missing. Errors meant for users (`HeadlessBIError`) print
`error: <message>` on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from headless_bi.errors import HeadlessBIError, QueryError

if TYPE_CHECKING:
    from headless_bi.warehouse.base import Warehouse

DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "trino", "presto", "spark")
FORMATS = ("json", "csv", "table")
EXIT_OK, EXIT_INTERNAL, EXIT_USER_ERROR = 0, 1, 2
_POSTGRES_PREFIXES = ("postgres://", "postgresql://")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `headless-bi` console script; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error (argparse exits 2 after printing usage)
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except HeadlessBIError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `headless-bi query ... | head`
        return EXIT_OK
    except Exception as exc:  # a bug: keep the promise of no traceback unless asked for one
        if os.environ.get("HBI_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc} (set HBI_DEBUG=1 for a traceback)", file=sys.stderr
        )
        return EXIT_INTERNAL


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; the subcommand names and flags are a public contract."""
    parser = argparse.ArgumentParser(prog="headless-bi", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("load", help="load CSV/Parquet/JSON files into a DuckDB file, one table per file")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--warehouse", required=True, metavar="W.duckdb")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("validate", help="check the semantic models and report every problem")
    p.add_argument("--models", required=True, metavar="DIR")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("compile", help="print the SQL a query compiles to")
    p.add_argument("--models", required=True, metavar="DIR")
    p.add_argument("--query", required=True, metavar="JSON", help="JSON text, @file.json, or - for stdin")
    p.add_argument("--dialect", default="duckdb", choices=DIALECTS)
    p.add_argument("--explain", action="store_true", help="also print the plan (groups, joins)")
    p.add_argument("--pretty", action="store_true", help="format the SQL over several lines")
    p.add_argument("--warehouse", metavar="W", help="compile as `query` would for this warehouse")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("query", help="run a query against a warehouse and print the result")
    p.add_argument("--models", required=True, metavar="DIR")
    p.add_argument(
        "--warehouse", required=True, metavar="W", help="a DuckDB file, or a postgresql:// connection URL"
    )
    p.add_argument("--query", required=True, metavar="JSON", help="JSON text, @file.json, or - for stdin")
    p.add_argument("--format", default="json", choices=FORMATS)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("demo-data", help="generate the demo warehouse")
    p.add_argument("--warehouse", required=True, metavar="W")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser(
        "serve",
        help="run the service: GraphQL at /graphql, admin UI at /, health at /healthz",
        description="Unset options come from HBI_<NAME> environment variables, then the defaults.",
    )
    p.add_argument("--models", metavar="DIR")
    p.add_argument("--warehouse", metavar="W", help="a DuckDB file, or a postgresql:// connection URL")
    p.add_argument("--host")
    p.add_argument("--port", type=int, help="0 picks a free port")
    p.add_argument("--watch", action="store_true", default=None, help="reload when model files change")
    p.set_defaults(func=cmd_serve)
    return parser


# --- commands -------------------------------------------------------------------------------


def cmd_load(args: argparse.Namespace) -> int:
    from headless_bi.warehouse.files import load_files

    counts = load_files(args.files, args.warehouse)
    print(
        f"OK: loaded {_plural(len(counts), 'table')} ({sum(counts.values()):,} rows) into "
        f"{args.warehouse}: {_summary(counts)}"
    )
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from headless_bi.semantic.loader import load_models

    model = load_models(Path(args.models))
    cubes, views = len(getattr(model, "cubes", ())), len(getattr(model, "views", ()))
    print(f"OK: {_plural(cubes, 'cube')}, {_plural(views, 'view')} in {args.models}")
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    import sqlglot

    from headless_bi.semantic.compiler import compile_query
    from headless_bi.semantic.loader import load_models

    query = read_query(args.query)
    model = load_models(Path(args.models))
    if args.warehouse:  # the warehouse tells which time dimensions are calendar dates
        from headless_bi.service import bind_model

        warehouse = open_warehouse(args.warehouse)
        try:
            model = bind_model(model, warehouse)
        finally:
            warehouse.close()
    compiled = compile_query(model, query, dialect=args.dialect)
    if args.explain:
        print("-- " + compiled.plan.explain().replace("\n", "\n-- "))
    print(sqlglot.transpile(compiled.sql, read=args.dialect, pretty=True)[0] if args.pretty else compiled.sql)
    return EXIT_OK


def cmd_query(args: argparse.Namespace) -> int:
    from headless_bi.semantic.loader import load_models
    from headless_bi.service import run_query

    query = read_query(args.query)
    model = load_models(Path(args.models))
    warehouse = open_warehouse(args.warehouse)
    try:
        result = run_query(model, warehouse, query)
    finally:
        warehouse.close()
    if args.format == "json":
        json.dump(result.to_json_dict(), sys.stdout, indent=2, default=str, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        columns = result_columns(result)
        if args.format == "csv":
            write_csv(result.data, columns, sys.stdout)
        else:
            sys.stdout.write(format_table(result.data, columns))
            shown = _plural(len(result.data), "row")
            total = getattr(result, "total", None)
            print(f"({shown} of {total:,})" if total not in (None, len(result.data)) else f"({shown})")
    return EXIT_OK


def cmd_demo_data(args: argparse.Namespace) -> int:
    from headless_bi.demo.data import generate_demo_data

    counts = generate_demo_data(args.warehouse)
    print(
        f"OK: wrote {_plural(len(counts), 'table')} ({sum(counts.values()):,} rows) to "
        f"{args.warehouse}: {_summary(counts)}"
    )
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from headless_bi.runtime import Settings
    from headless_bi.server import serve

    settings = Settings.from_env(
        models=args.models, warehouse=args.warehouse, host=args.host, port=args.port, watch_models=args.watch
    )
    target = settings.warehouse
    if not target.startswith(_POSTGRES_PREFIXES) and target != ":memory:" and not Path(target).is_file():
        raise QueryError(
            f"Warehouse '{target}' does not exist (create it with `headless-bi load` "
            "or `headless-bi demo-data`)."
        )
    serve(settings)
    return EXIT_OK


# --- helpers --------------------------------------------------------------------------------


def read_query(spec: str, stdin: TextIO | None = None) -> dict[str, Any]:
    """The query object from `--query`: JSON text, `@path/to/file.json`, or `-` for stdin."""
    if spec == "-":
        text, source = (stdin or sys.stdin).read(), "stdin"
    elif spec.startswith("@"):
        path = Path(spec[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise QueryError(f"Cannot read query file '{path}': {exc.strerror or exc}") from exc
        source = f"'{path}'"
    else:
        text, source = spec, "--query"
    try:
        query = json.loads(text)
    except json.JSONDecodeError as exc:
        raise QueryError(
            f"The query in {source} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno} (char {exc.pos})."
        ) from exc
    if not isinstance(query, dict):
        raise QueryError(f"The query in {source} must be a JSON object, got {type(query).__name__}.")
    return query


def open_warehouse(spec: str) -> Warehouse:
    """A `Warehouse` for `--warehouse`: a postgresql:// URL, else an existing DuckDB file (read-only)."""
    if spec.startswith(_POSTGRES_PREFIXES):
        from headless_bi.warehouse.postgres_warehouse import PostgresWarehouse

        return PostgresWarehouse(spec)
    from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse

    if not Path(spec).is_file():
        raise QueryError(
            f"Warehouse '{spec}' does not exist (create it with `headless-bi load` "
            "or `headless-bi demo-data`)."
        )
    return DuckDBWarehouse(spec, read_only=True)


def result_columns(result: Any) -> list[str]:
    """Column order for csv/table output: the Arrow result's columns, else the first row's keys.

    Rows may carry extra alias keys (a time dimension also under its plain name) that would
    repeat a column, so the Arrow columns win when every one of them is in the rows.
    """
    table = getattr(result, "table", None)
    names = list(table.column_names) if table is not None else []
    if names and (not result.data or all(n in result.data[0] for n in names)):
        return names
    return list(result.data[0]) if result.data else names


def write_csv(rows: list[dict[str, Any]], columns: list[str], out: TextIO) -> None:
    """Rows as CSV with a header line; None becomes an empty field."""
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table: numbers right-aligned, text left-aligned, NULL shown as empty."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    numeric = [all(_is_number(row.get(c)) for row in rows if row.get(c) is not None) for c in columns]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip() + "\n"

    out = [line(list(columns)), "  ".join("-" * w for w in widths) + "\n"]
    out.extend(line(r) for r in cells)
    return "".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.15g}"  # 15 significant digits: exact for typical decimals, hides float noise
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{table} {rows:,}" for table, rows in counts.items())


if __name__ == "__main__":
    sys.exit(main())
