"""The `headless-bi` command line: load data, check and compile models, run queries, manage users.

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

    p = sub.add_parser("ask", help="ask a question in plain language: the query it became, and the answer")
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("--models", required=True, metavar="DIR")
    p.add_argument(
        "--warehouse", required=True, metavar="W", help="a DuckDB file, or a postgresql:// connection URL"
    )
    p.add_argument("--today", metavar="YYYY-MM-DD", help="the day relative dates count from (default: today)")
    p.add_argument("--format", default="table", choices=("json", "table"))
    p.set_defaults(func=cmd_ask)

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

    _add_identity_commands(sub)
    return parser


def _add_identity_commands(sub: Any) -> None:
    """`users`, `roles`, `token` and `keys`: identities in the metadata DB shared with the admin UI."""
    meta = argparse.ArgumentParser(add_help=False)
    meta.add_argument(
        "--metadata-url",
        metavar="URL",
        help="the metadata DB (default: $HBI_METADATA_URL, else var/metadata.db)",
    )

    users = sub.add_parser("users", help="add, list and change users (the admin UI's users)")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    p = users_sub.add_parser(
        "add",
        parents=[meta],
        help="create a user",
        description="Create an active user. Without --password a random one is generated and printed once.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--role", action="append", required=True, metavar="ROLE", help="repeatable: Admin, Analyst…"
    )
    p.add_argument("--password", metavar="P", help="the password; - reads one line from stdin")
    p.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an attribute for access policies; repeat a key for a list: --attr region=EU --attr region=US",
    )
    p.add_argument("--email", metavar="E", help="default: NAME@localhost (the admin UI needs a unique email)")
    p.set_defaults(func=cmd_users_add)
    p = users_sub.add_parser("list", parents=[meta], help="list users with their roles and attributes")
    p.set_defaults(func=cmd_users_list)
    p = users_sub.add_parser(
        "set-attr",
        parents=[meta],
        help="set or remove user attributes",
        description="Replace the named attributes; KEY= (empty value) removes one. Other attributes stay.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("attrs", nargs="+", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_users_set_attr)

    roles = sub.add_parser("roles", help="list roles")
    roles_sub = roles.add_subparsers(dest="roles_command", required=True, metavar="ACTION")
    p = roles_sub.add_parser("list", parents=[meta], help="list roles and how many users hold each")
    p.set_defaults(func=cmd_roles_list)

    p = sub.add_parser(
        "token",
        parents=[meta],
        help="print a bearer token for a user",
        description="Signed with $HBI_SECRET_KEY, else var/secret_key: run this where the server runs.",
    )
    p.add_argument("name", metavar="USER")
    p.add_argument("--expires", metavar="DURATION", help="e.g. 3600, 30m, 1h, 7d (default: $HBI_TOKEN_TTL_S)")
    p.set_defaults(func=cmd_token)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = keys_sub.add_parser(
        "create",
        parents=[meta],
        help="create an API key and print it once",
        description="The key acts as its user, with that user's current roles and attributes. "
        "Only a hash is stored: the key is printed once and cannot be shown again.",
    )
    p.add_argument("name", metavar="NAME", help="a label for the key, e.g. the service using it")
    p.add_argument("--user", metavar="USER", help="the user the key acts as (default: the user called NAME)")
    p.set_defaults(func=cmd_keys_create)
    p = keys_sub.add_parser("list", parents=[meta], help="list API keys (never their secrets)")
    p.add_argument("--user", metavar="USER", help="only this user's keys")
    p.set_defaults(func=cmd_keys_list)
    p = keys_sub.add_parser("revoke", parents=[meta], help="revoke an API key by its id (k_...)")
    p.add_argument("key_id", metavar="ID")
    p.set_defaults(func=cmd_keys_revoke)


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


def cmd_ask(args: argparse.Namespace) -> int:
    from datetime import date

    from headless_bi.nlq.answer import ask
    from headless_bi.semantic.loader import load_models
    from headless_bi.service import run_query

    try:
        today = date.fromisoformat(args.today) if args.today else date.today()
    except ValueError:
        message = f"--today must be a date as YYYY-MM-DD, got {args.today!r}"
        raise QueryError(message, value=args.today) from None
    model = load_models(Path(args.models))
    warehouse = open_warehouse(args.warehouse)
    try:
        answer = ask(
            args.question, model=model, today=today,
            execute=lambda q: run_query(model, warehouse, q), probe=lambda q: run_query(model, warehouse, q),
        )  # fmt: skip
    finally:
        warehouse.close()
    if args.format == "json":
        out = answer.to_json_dict(include_sql=True)
        json.dump(out, sys.stdout, indent=2, default=str, ensure_ascii=False)
        sys.stdout.write("\n")
        return EXIT_OK
    if answer.query is None:
        print(answer.clarification)
        return EXIT_OK
    print(f"{answer.restatement}  (confidence {answer.confidence:.0%})")
    print(json.dumps(answer.query, ensure_ascii=False))
    print()
    sys.stdout.write(format_table(answer.data, [a.key for a in answer.annotations]))
    print(f"({_plural(len(answer.data), 'row')})")
    print()
    print(answer.narrative)
    for alt in answer.alternatives:
        if "restatement" in alt:
            print(f"  or: {alt['restatement']}")
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


# --- identity commands ----------------------------------------------------------------------


def cmd_users_add(args: argparse.Namespace) -> int:
    import secrets

    generated = args.password is None
    password = secrets.token_urlsafe(12) if generated else args.password
    if password == "-":
        password = sys.stdin.readline().rstrip("\r\n")
    attributes = parse_attributes(args.attr, allow_empty=False)
    user = _store(args).add_user(
        args.name, args.role, password=password, attributes=attributes, email=args.email
    )
    print(f"OK: created user '{user.username}' with role(s) {', '.join(sorted(user.roles))}")
    if generated:
        print(f"password: {password}  (shown only now)")
    return EXIT_OK


def cmd_users_list(args: argparse.Namespace) -> int:
    rows = [
        {
            "user": u.username,
            "active": u.active,
            "roles": ", ".join(sorted(u.roles)),
            "attributes": json.dumps(
                {k: v if isinstance(v, str) else list(v) for k, v in u.attributes.items()}, ensure_ascii=False
            )
            if u.attributes
            else "",
        }
        for u in _store(args).list_users()
    ]
    sys.stdout.write(format_table(rows, ["user", "active", "roles", "attributes"]))
    return EXIT_OK


def cmd_users_set_attr(args: argparse.Namespace) -> int:
    user = _store(args).set_attributes(args.name, parse_attributes(args.attrs, allow_empty=True))
    shown = ", ".join(f"{k}={v if isinstance(v, str) else list(v)}" for k, v in user.attributes.items())
    print(f"OK: attributes of '{user.username}': {shown or '(none)'}")
    return EXIT_OK


def cmd_roles_list(args: argparse.Namespace) -> int:
    rows = [{"role": name, "users": count} for name, count in _store(args).list_roles()]
    sys.stdout.write(format_table(rows, ["role", "users"]))
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    from headless_bi.security.authenticate import Authenticator
    from headless_bi.security.tokens import parse_duration

    settings = _settings(args)
    try:
        lifetime = parse_duration(args.expires) if args.expires else settings.token_ttl_s
    except ValueError as exc:
        raise QueryError(f"--expires: {exc}.") from None
    token, _ = Authenticator(settings).issue(args.name, lifetime)
    print(token)
    return EXIT_OK


def cmd_keys_create(args: argparse.Namespace) -> int:
    store = _store(args)
    username = args.user or args.name
    if store.get_user(username) is None:
        hint = "" if args.user else " (pass --user USER: the key's owner defaults to a user called NAME)"
        raise QueryError(f"User '{username}' does not exist{hint}.")
    record, key = store.create_api_key(args.name, username)
    print(f"OK: created API key {record.id} '{record.name}' for user '{record.username}'")
    print("key (shown only now):")
    print(key)
    return EXIT_OK


def cmd_keys_list(args: argparse.Namespace) -> int:
    rows = [
        {
            "id": k.id,
            "name": k.name,
            "user": k.username,
            "created": _when(k.created_at),
            "last used": _when(k.last_used_at),
            "revoked": _when(k.revoked_at),
        }
        for k in _store(args).list_api_keys(args.user)
    ]
    sys.stdout.write(format_table(rows, ["id", "name", "user", "created", "last used", "revoked"]))
    return EXIT_OK


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    record = _store(args).revoke_api_key(args.key_id)
    print(f"OK: revoked API key {record.id} '{record.name}' of user '{record.username}'")
    return EXIT_OK


def parse_attributes(pairs: Sequence[str], *, allow_empty: bool) -> dict[str, str | list[str]]:
    """`KEY=VALUE` arguments as attributes: a repeated key gives a list; `KEY=` (if allowed) removes."""
    values: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise QueryError(f"Attribute '{pair}' is not KEY=VALUE.")
        if not value and not allow_empty:
            raise QueryError(f"Attribute '{pair}' has no value.")
        values.setdefault(key, [])
        if value:
            values[key].append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


def _settings(args: argparse.Namespace) -> Any:
    from headless_bi.runtime import Settings

    return Settings.from_env(metadata_url=getattr(args, "metadata_url", None))


def _store(args: argparse.Namespace) -> Any:
    from headless_bi.security.store import IdentityStore

    return IdentityStore(_settings(args).metadata_url)


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


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
