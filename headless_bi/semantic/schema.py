"""The shape of a model file (Cube's YAML data-model syntax), checked with cerberus.

Only the shape lives here; whether references resolve is checked by the loader. Keys that Cube
accepts but this project ignores (pre-aggregations, refresh keys, ...) are allowed so that a Cube
model loads unchanged; keys Cube does not know are errors with a 'did you mean'.
"""

from __future__ import annotations

from typing import Any

from cerberus import Validator

from headless_bi.errors import ModelIssue, did_you_mean
from headless_bi.semantic.yaml_source import line_at

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
RELATIONSHIPS = {
    "many_to_one": "many_to_one",
    "belongs_to": "many_to_one",
    "belongsTo": "many_to_one",
    "one_to_many": "one_to_many",
    "has_many": "one_to_many",
    "hasMany": "one_to_many",
    "one_to_one": "one_to_one",
    "has_one": "one_to_one",
    "hasOne": "one_to_one",
}
DIMENSION_TYPES = ["string", "number", "boolean", "time"]
MEASURE_TYPES = ["count", "count_distinct", "count_distinct_approx", "sum", "avg", "min", "max", "number"]
FORMATS = ["currency", "percent", "imageUrl", "link", "id"]

_text = {"type": "string"}
_flag = {"type": "boolean"}
_free = {"type": "dict", "allow_unknown": True}
_anything: dict[str, Any] = {}
_name = {"type": "string", "required": True, "regex": IDENTIFIER}
_sql = {"type": ["string", "number", "boolean"], "coerce": lambda v: v if v is None else str(v)}

_common = {
    "name": _name,
    "title": _text,
    "description": _text,
    "public": _flag,
    "shown": _flag,
    "meta": _free,
}

# Cube's member masking: what a role that may not see the member gets instead (a literal, or SQL).
_mask = {
    "type": ["string", "number", "boolean", "dict"],
    "nullable": True,
    "schema": {"sql": {**_sql, "required": True}},
}

DIMENSION_SCHEMA = {
    **_common,
    "mask": _mask,
    "sql": {**_sql, "required": True},
    "type": {"type": "string", "required": True, "allowed": DIMENSION_TYPES},
    "primary_key": _flag,
    "format": {"type": ["string", "dict"]},
    "sub_query": _flag,
    "propagate_filters_to_sub_query": _flag,
    "granularities": {"type": "list"},
    "order": _text,
}

MEASURE_SCHEMA = {
    **_common,
    "mask": _mask,
    "sql": _sql,
    "type": {"type": "string", "required": True, "allowed": MEASURE_TYPES},
    "format": {"type": "string", "allowed": FORMATS},
    "filters": {"type": "list", "schema": {"type": "dict", "schema": {"sql": {**_sql, "required": True}}}},
    "rolling_window": {
        "type": "dict",
        "schema": {
            "trailing": {
                "type": "string",
                "regex": r"^(unbounded|\d+ (second|minute|hour|day|week|month|quarter|year)s?)$",
            },
            "leading": {
                "type": "string",
                "regex": r"^(unbounded|\d+ (second|minute|hour|day|week|month|quarter|year)s?)$",
            },
            "offset": {"type": "string", "allowed": ["start", "end"]},
        },
    },
    "drill_members": {"type": "list", "schema": _text},
}

SEGMENT_SCHEMA = {**_common, "sql": {**_sql, "required": True}}

JOIN_SCHEMA = {
    "name": _name,
    "relationship": {"type": "string", "required": True, "allowed": list(RELATIONSHIPS)},
    "sql": {**_sql, "required": True},
}

_member_list = {"type": ["string", "list"], "schema": _text}  # "*" or names
POLICY_SCHEMA = {
    "group": _text,
    "groups": {"type": ["string", "list"], "schema": _text},
    "role": _text,
    "conditions": {
        "type": "list",
        "schema": {"type": "dict", "schema": {"if": {"type": ["string", "boolean"], "required": True}}},
    },
    "member_level": {"type": "dict", "schema": {"includes": _member_list, "excludes": _member_list}},
    "row_level": {
        "type": "dict",
        "schema": {"filters": {"type": "list", "schema": {"type": "dict"}}, "allow_all": _flag},
    },
    "member_masking": {"type": "dict", "schema": {"includes": _member_list, "excludes": _member_list}},
}
_policies = {"type": "list", "schema": {"type": "dict", "schema": POLICY_SCHEMA}}

_members = lambda schema: {"type": "list", "schema": {"type": "dict", "schema": schema}}  # noqa: E731

CUBE_SCHEMA = {
    **_common,
    "sql_table": {"type": "string", "excludes": "sql"},
    "sql": {"type": "string", "excludes": "sql_table"},
    "sql_alias": _text,
    "data_source": _text,
    "extends": _text,
    "refresh_key": _free,
    "pre_aggregations": {"type": "list"},
    "hierarchies": {"type": "list"},
    "folders": {"type": "list"},
    "calendar": _flag,
    "joins": _members(JOIN_SCHEMA),
    "dimensions": _members(DIMENSION_SCHEMA),
    "measures": _members(MEASURE_SCHEMA),
    "segments": _members(SEGMENT_SCHEMA),
    "access_policy": _policies,
}

_include_item = {"type": ["string", "dict"]}
VIEW_CUBE_SCHEMA = {
    "join_path": {
        "type": "string",
        "required": True,
        "regex": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
    },
    "includes": {"type": ["string", "list"], "schema": _include_item},
    "excludes": {"type": "list", "schema": _text},
    "prefix": _flag,
    "alias": {"type": "string", "regex": IDENTIFIER},
    "split": _flag,
}

VIEW_SCHEMA = {
    **_common,
    "cubes": {"type": "list", "schema": {"type": "dict", "schema": VIEW_CUBE_SCHEMA}},
    "measures": {"type": "list"},
    "dimensions": {"type": "list"},
    "segments": {"type": "list"},
    "folders": {"type": "list"},
    "access_policy": _policies,
}

FILE_SCHEMA = {
    "cubes": {"type": "list", "schema": {"type": "dict", "schema": CUBE_SCHEMA}},
    "views": {"type": "list", "schema": {"type": "dict", "schema": VIEW_SCHEMA}},
}

_KNOWN_KEYS: dict[str, list[str]] = {
    "file": list(FILE_SCHEMA),
    "cube": list(CUBE_SCHEMA),
    "view": list(VIEW_SCHEMA),
    "dimension": list(DIMENSION_SCHEMA),
    "measure": list(MEASURE_SCHEMA),
    "segment": list(SEGMENT_SCHEMA),
    "join": list(JOIN_SCHEMA),
}


_ALLOWED: dict[tuple[str, str], list[str]] = {
    ("dimension", "type"): DIMENSION_TYPES,
    ("measure", "type"): MEASURE_TYPES,
    ("measure", "format"): FORMATS,
}


def check_shape(document: Any, file: str) -> list[ModelIssue]:
    """Every shape problem in one parsed file, each with its line and the member it sits in."""
    if document is None:
        return []
    if not isinstance(document, dict):
        return [
            ModelIssue(
                file,
                getattr(document, "line", 1),
                None,
                "a model file must be a mapping with 'cubes' and/or 'views'",
            )
        ]
    validator = Validator(FILE_SCHEMA)
    if validator.validate(document):
        return []
    issues = []
    for path, message in _flatten(validator.errors, ()):
        issues.append(
            ModelIssue(
                file, line_at(document, path), _member_at(document, path), _explain(document, path, message)
            )
        )
    return sorted(issues, key=lambda i: (i.line or 0, i.message))


def _flatten(errors: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    found: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            found.extend(_flatten(value, (*path, key)))
    elif isinstance(errors, list):
        for item in errors:
            found.extend(_flatten(item, path))
    else:
        found.append((path, str(errors)))
    return found


def _member_at(document: Any, path: tuple[Any, ...]) -> str | None:
    """'cube' or 'cube.member' for the deepest named mapping on the path."""
    names: list[str] = []
    node = document
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            names.append(node["name"])
    return ".".join(names[:2]) or None


def _explain(document: Any, path: tuple[Any, ...], message: str) -> str:
    key = path[-1] if path else None
    if message == "unknown field" and isinstance(key, str):
        kind = _kind_of(path)
        hint = did_you_mean(key, _KNOWN_KEYS.get(kind, []))
        return f"unknown key '{key}' in {kind}.{hint}"
    if message.startswith("unallowed value") and isinstance(key, str):
        if key == "relationship":
            return f"{message}; use many_to_one, one_to_many or one_to_one"
        allowed = _ALLOWED.get((_kind_of(path), key), [])
        value = message.removeprefix("unallowed value ").strip()
        hint = did_you_mean(value, allowed) or (f" Use one of: {', '.join(allowed)}." if allowed else "")
        return f"'{key}': {message}.{hint}"
    if isinstance(key, str):
        return f"'{key}': {message}"
    return message


def _kind_of(path: tuple[Any, ...]) -> str:
    """Which kind of mapping holds the last key of `path` ('cube', 'measure', ...)."""
    sections = [step for step in path[:-1] if isinstance(step, str)]
    if not sections:
        return "file"
    last = sections[-1]
    return {
        "cubes": "cube",
        "views": "view",
        "dimensions": "dimension",
        "measures": "measure",
        "segments": "segment",
        "joins": "join",
    }.get(last, last)
