"""Load CSV / Parquet / JSON files into a DuckDB database file, one table per file."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from headless_bi.errors import QueryError
from headless_bi.warehouse.duckdb_warehouse import connect_file

# Extension → DuckDB reader; DuckDB decompresses .gz/.zst itself, so those suffixes are skipped.
_READERS = {
    ".csv": "read_csv_auto",
    ".tsv": "read_csv_auto",
    ".txt": "read_csv_auto",
    ".parquet": "read_parquet",
    ".pq": "read_parquet",
    ".json": "read_json_auto",  # format='auto' takes newline-delimited and top-level arrays alike
    ".jsonl": "read_json_auto",
    ".ndjson": "read_json_auto",
}
_COMPRESSION = {".gz", ".zst"}


def table_name_for(path: str | Path) -> str:
    """A valid unquoted identifier from the file stem: `bart-lines.json` → `bart_lines`.

    Lowercased, runs of non-alphanumerics become `_`, and a leading digit gets a `t_` prefix.
    """
    name = re.sub(r"[^a-z0-9]+", "_", _stem_and_suffix(Path(path))[0].lower()).strip("_") or "t"
    return f"t_{name}" if name[0].isdigit() else name


def load_files(paths: list[str | Path], warehouse: str) -> dict[str, int]:
    """Create or replace one table per file in the DuckDB file `warehouse`; return table → rows.

    All files load in one transaction, so a bad file leaves the database as it was.
    """
    plan: dict[str, tuple[Path, str]] = {}
    for raw in paths:
        path = Path(raw)
        suffix = _stem_and_suffix(path)[1]
        reader = _READERS.get(suffix)
        if reader is None:
            known = ", ".join(sorted(_READERS))
            raise QueryError(
                f"Cannot load '{path}': unknown file type '{suffix or path.name}' (expected one of {known}).",
                value=str(path),
            )
        if not path.is_file():
            raise QueryError(f"Cannot load '{path}': no such file.", value=str(path))
        table = table_name_for(path)
        if table in plan:
            raise QueryError(
                f"Cannot load both '{plan[table][0]}' and '{path}': both would become table '{table}'.",
                value=str(path),
            )
        plan[table] = (path, reader)

    Path(warehouse).parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    con = connect_file(warehouse)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("BEGIN")
        for table, (path, reader) in plan.items():
            try:
                # The reader name comes from our table above; the path is a bound parameter.
                con.execute(
                    f"CREATE OR REPLACE TABLE {_quote(table)} AS SELECT * FROM {reader}(?)", [str(path)]
                )
            except duckdb.Error as exc:
                raise QueryError(f"Cannot load '{path}': {exc}", value=str(path)) from exc
            row = con.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()
            counts[table] = int(row[0]) if row else 0
        con.execute("COMMIT")
    finally:
        con.close()  # an uncommitted transaction is rolled back
    return counts


def _stem_and_suffix(path: Path) -> tuple[str, str]:
    """(stem, lowercased data suffix), looking through a compression suffix: `a.csv.gz` → ('a', '.csv')."""
    name = path.name
    suffix = path.suffix.lower()
    if suffix in _COMPRESSION:
        name = name[: -len(suffix)]
        suffix = Path(name).suffix.lower()
    return (name[: -len(suffix)] if suffix else name), suffix


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
