"""Access policies are checked when the models load: every mistake is reported with file and line."""

from __future__ import annotations

from pathlib import Path

from headless_bi.semantic.loader import check_models

MODEL = """\
cubes:
  - name: orders
    sql_table: orders
    access_policy:
      - group: Analyst
        member_level:
          includes: [count, nonexistent]
        row_level:
          filters:
            - member: statuss
              operator: equals
              values: ["{ userAttributes.region }"]
      - group: Viewer
        conditions:
          - if: "{ userAttributes.x == }"
        row_level:
          filters:
            - member: count
              operator: gt
              values: ["5"]
      - groups: [Analyst]
        row_level:
          filters:
            - member: status
              operator: likes
              values: ["{ userAttributes }"]
      - group: Admin
        member_masking:
          includes: [status]
    dimensions:
      - name: id
        sql: id
        type: number
        primary_key: true
      - name: status
        sql: status
        type: string
    measures:
      - name: count
        type: count
"""


def _problems(tmp_path: Path, text: str) -> list[tuple[int | None, str]]:
    (tmp_path / "model.yml").write_text(text)
    _, issues = check_models(tmp_path)
    assert all(Path(i.file).name == "model.yml" for i in issues)
    return [(i.line, i.message) for i in issues if i.severity == "error"]


def test_every_policy_mistake_is_located(tmp_path: Path) -> None:
    problems = _problems(tmp_path, MODEL)
    expected = [
        (5, "member_level.includes: 'orders' has no member 'nonexistent'"),
        (5, "row_level.filters: 'orders' has no member 'statuss'. Did you mean 'status'?"),
        (13, "condition '{ userAttributes.x == }' ends too early"),
        (13, "row_level.filters: 'count' is a measure; row filters use dimensions"),
        (21, "row_level.filters on 'status': unknown operator 'likes'"),
        (21, "'{ userAttributes }' is not a user attribute reference"),
    ]
    for line, text in expected:
        assert any(at == line and text in message for at, message in problems), (line, text, problems)
    assert len(problems) == len(expected), problems


def test_policy_syntax_errors_are_located(tmp_path: Path) -> None:
    broken = MODEL.replace("      - groups: [Analyst]\n", "      - groups: 5\n").replace(
        "          includes: [status]\n", "          includes: [status]\n        bogus_key: 1\n"
    )
    problems = _problems(tmp_path, broken)
    assert any(line == 21 and "'groups'" in message for line, message in problems), problems
    assert any(line == 30 and "unknown key 'bogus_key'" in message for line, message in problems), problems


def test_a_correct_policy_loads(tmp_path: Path) -> None:
    fixed = (
        MODEL.replace("[count, nonexistent]", "[count]")
        .replace("statuss", "status")
        .replace("x == }", "x == 'yes' }")
        .replace("member: count\n", "member: id\n")
        .replace("likes", "contains")
        .replace('["{ userAttributes }"]', '["{ userAttributes.region }"]')
    )
    assert _problems(tmp_path, fixed) == []
