"""The CLI contract: subcommands, --query forms, output formats, and `error: …` with exit 2.

The semantic core and service are replaced by small fakes here, so these tests pin the CLI's own
behaviour; end-to-end runs with real models belong with the core's tests.
"""

from __future__ import annotations

import io
import json
import sys
import types
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headless_bi import cli
from headless_bi.errors import ModelError, ModelIssue, QueryError
from headless_bi.warehouse.files import load_files

ROWS = [
    {"orders.status": "completed", "orders.count": 67, "orders.amount": Decimal("1234.50")},
    {"orders.status": "placed", "orders.count": 13, "orders.amount": None},
]


@dataclass
class FakeResult:
    data: list[dict[str, Any]]
    sql: str = "SELECT 1"
    total: int | None = None
    annotation: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.data)

    def to_json_dict(self) -> dict[str, Any]:
        return {"data": self.data, "annotation": self.annotation, "sql": self.sql, "total": self.total}


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Fake loader/compiler/service modules; `calls` records what the CLI passed them."""
    calls: dict[str, Any] = {"result": FakeResult(ROWS)}

    def load_models(path: Path) -> Any:
        calls["models"] = path
        if calls.get("model_error"):
            raise calls["model_error"]
        return types.SimpleNamespace(cubes={"orders": 1, "customers": 2}, views={"sales": 3})

    def compile_query(model: Any, query: dict[str, Any], *, dialect: str = "duckdb") -> Any:
        calls["compiled"] = (query, dialect)
        return types.SimpleNamespace(sql=f"SELECT /* {dialect} */ 1")

    def run_query(model: Any, warehouse: Any, query: dict[str, Any]) -> FakeResult:
        calls["ran"] = (query, warehouse.dialect)
        return calls["result"]

    for name, attrs in {
        "headless_bi.semantic.loader": {"load_models": load_models},
        "headless_bi.semantic.compiler": {"compile_query": compile_query},
        "headless_bi.service": {"run_query": run_query},
    }.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))
    return calls


@pytest.fixture
def warehouse(tmp_path: Path) -> str:
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text("id,status\n1,placed\n2,completed\n")
    path = str(tmp_path / "w.duckdb")
    load_files([csv_file], path)
    return path


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "demo-data" in capsys.readouterr().out
    assert cli.main(["compile", "--models", "m"]) == 2  # --query missing
    assert cli.main([]) == 2


def test_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-b.csv").write_text("x\n1\n2\n")
    (tmp_path / "c.json").write_text('[{"y": 1}]')
    assert cli.main(["load", str(tmp_path / "a-b.csv"), str(tmp_path / "c.json"),
                     "--warehouse", str(tmp_path / "w.duckdb")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: loaded 2 tables (3 rows) into ")
    assert "a_b 2, c 1" in out


def test_load_error_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.xlsx").write_text("x")
    assert cli.main(["load", str(tmp_path / "notes.xlsx"), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: Cannot load") and "notes.xlsx" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_validate(core: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "--models", "models/x"]) == 0
    assert capsys.readouterr().out == "OK: 2 cubes, 1 view in models/x\n"
    assert core["models"] == Path("models/x")


def test_validate_prints_every_issue(core: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    core["model_error"] = ModelError([
        ModelIssue("orders.yml", 3, "orders.amount", "unknown column 'amt'"),
        ModelIssue("customers.yml", 9, None, "cube 'customers' has no primary key"),
    ])
    assert cli.main(["validate", "--models", "m"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 2 problem(s)")
    assert "orders.yml:3: orders.amount: unknown column 'amt'" in err
    assert "customers.yml:9: cube 'customers' has no primary key" in err


def test_compile_with_inline_file_and_stdin_queries(core: dict[str, Any], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    query = {"measures": ["orders.count"]}
    assert cli.main(["compile", "--models", "m", "--query", json.dumps(query), "--dialect", "snowflake"]) == 0
    assert capsys.readouterr().out == "SELECT /* snowflake */ 1\n"
    assert core["compiled"] == (query, "snowflake")

    (tmp_path / "q.json").write_text(json.dumps(query))
    assert cli.main(["compile", "--models", "m", "--query", f"@{tmp_path / 'q.json'}"]) == 0
    assert core["compiled"] == (query, "duckdb")

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(query)))
    assert cli.main(["compile", "--models", "m", "--query", "-"]) == 0
    assert core["compiled"] == (query, "duckdb")
    capsys.readouterr()
    assert cli.main(["compile", "--models", "m", "--query", "{}", "--dialect", "oracle"]) == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('{"measures": ["orders.count"],}',
         "not valid JSON: Expecting property name enclosed in double quotes at line 1, column 31 (char 30)"),
        ("[1, 2]", "must be a JSON object, got list"),
        ("@/no/such/query.json", "Cannot read query file '/no/such/query.json'"),
    ],
)
def test_bad_query_argument(core: dict[str, Any], spec: str, message: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compile", "--models", "m", "--query", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_query_json(core: dict[str, Any], warehouse: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["query", "--models", "m", "--warehouse", warehouse,
                     "--query", '{"measures": ["orders.count"]}']) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"][0] == {"orders.status": "completed", "orders.count": 67, "orders.amount": "1234.50"}
    assert out["sql"] == "SELECT 1"
    assert core["ran"] == ({"measures": ["orders.count"]}, "duckdb")


def test_query_csv(core: dict[str, Any], warehouse: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["query", "--models", "m", "--warehouse", warehouse, "--query", "{}", "--format", "csv"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out == (
        "orders.status,orders.count,orders.amount\ncompleted,67,1234.50\nplaced,13,\n"
    )


def test_query_table(core: dict[str, Any], warehouse: str, capsys: pytest.CaptureFixture[str]) -> None:
    core["result"] = FakeResult(ROWS, total=80)
    assert cli.main(["query", "--models", "m", "--warehouse", warehouse, "--query", "{}",
                     "--format", "table"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "orders.status  orders.count  orders.amount",
        "-------------  ------------  -------------",
        "completed                67        1234.50",
        "placed                   13",
        "(2 rows of 80)",
    ]


def test_query_table_without_rows(core: dict[str, Any], warehouse: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    core["result"] = FakeResult([])
    assert cli.main(["query", "--models", "m", "--warehouse", warehouse, "--query", "{}",
                     "--format", "table"]) == 0
    assert capsys.readouterr().out.endswith("(0 rows)\n")


def test_query_missing_warehouse(core: dict[str, Any], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.duckdb")
    assert cli.main(["query", "--models", "m", "--warehouse", missing, "--query", "{}"]) == 2
    assert f"Warehouse '{missing}' does not exist" in capsys.readouterr().err
    assert not Path(missing).exists()


def test_query_errors_from_the_service(core: dict[str, Any], warehouse: str,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    def failing(*_: Any) -> Any:
        raise QueryError("Unknown member 'orders.cnt'. Did you mean 'orders.count'?")

    monkeypatch.setattr(sys.modules["headless_bi.service"], "run_query", failing)
    assert cli.main(["query", "--models", "m", "--warehouse", warehouse, "--query", "{}"]) == 2
    assert capsys.readouterr().err == "error: Unknown member 'orders.cnt'. Did you mean 'orders.count'?\n"


def test_unexpected_exceptions_do_not_print_tracebacks(core: dict[str, Any], warehouse: str,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(sys.modules["headless_bi.service"], "run_query", broken)
    monkeypatch.delenv("HBI_DEBUG", raising=False)
    assert cli.main(["query", "--models", "m", "--warehouse", warehouse, "--query", "{}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("internal error: RuntimeError: boom") and "Traceback" not in err


def test_demo_data(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = types.SimpleNamespace(generate_demo_data=lambda path: {"orders": 1000, "customers": 20})
    monkeypatch.setitem(sys.modules, "headless_bi.demo", types.SimpleNamespace(data=fake))
    monkeypatch.setitem(sys.modules, "headless_bi.demo.data", fake)
    assert cli.main(["demo-data", "--warehouse", "var/x.duckdb"]) == 0
    assert capsys.readouterr().out == (
        "OK: wrote 2 tables (1,020 rows) to var/x.duckdb: orders 1,000, customers 20\n"
    )


def test_format_table_alignment() -> None:
    text = cli.format_table([{"a": "x", "b": 1.5, "c": True}, {"a": "longer", "b": 10, "c": None}],
                            ["a", "b", "c"])
    assert text.splitlines() == [
        "a         b  c",
        "------  ---  ----",
        "x       1.5  true",
        "longer   10",
    ]


def test_columns_follow_the_arrow_result_not_row_aliases(core: dict[str, Any], warehouse: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    class Aliased(FakeResult):
        @property
        def table(self) -> pa.Table:
            return pa.table({"orders.created_at.year": ["2024-01-01T00:00:00.000"], "orders.count": [5]})

    core["result"] = Aliased([{"orders.created_at.year": "2024-01-01T00:00:00.000", "orders.count": 5,
                               "orders.created_at": "2024-01-01T00:00:00.000"}])
    args = ["query", "--models", "m", "--warehouse", warehouse, "--query", "{}", "--format", "csv"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out == "orders.created_at.year,orders.count\n2024-01-01T00:00:00.000,5\n"


def test_a_warehouse_held_by_another_process_is_a_user_error(tmp_path: Path) -> None:
    """`demo-data` (or `load`) while `serve` holds the file: `error: ...` and status 2, not a crash."""
    import subprocess

    import duckdb

    path = tmp_path / "held.duckdb"
    holder = duckdb.connect(str(path))  # this process holds the write lock, as a running serve would
    try:
        done = subprocess.run(
            [sys.executable, "-m", "headless_bi.cli", "demo-data", "--warehouse", str(path)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        holder.close()
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "in use by another process" in done.stderr
