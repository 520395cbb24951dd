"""Cube's `access_policy` syntax, parsed and checked at load time.

A policy names the groups it is for, optional conditions on the user's attributes, which members the
group may see (`member_level`), which it sees masked (`member_masking`) and which rows
(`row_level`). This module only reads and checks the syntax; `headless_bi.security.govern` applies
policies to a user. Member names are relative to the cube or view (`count`), as in Cube; the
qualified form (`orders.count`) is accepted too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from headless_bi.errors import did_you_mean

ANY_GROUP = "*"
ALL = "*"
# `{ userAttributes.region }` or Cube's `{ securityContext.region }`; also `${securityContext.region}`.
PLACEHOLDER = re.compile(r"^\$?\{\s*(?:userAttributes|securityContext)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}$")
_CONDITION_TOKEN = re.compile(
    r"\s*(?:(?P<attr>(?:userAttributes|securityContext)\.[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<string>'[^']*'|\"[^\"]*\")|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<word>true|false|null|and|or|not|in)\b|(?P<op>===|!==|==|!=|>=|<=|&&|\|\||[!<>(),\[\]]))"
)
FILTER_OPERATORS = frozenset(
    {
        "equals", "notEquals", "contains", "notContains", "startsWith", "notStartsWith", "endsWith",
        "notEndsWith", "gt", "gte", "lt", "lte", "set", "notSet", "inDateRange", "notInDateRange",
        "beforeDate", "beforeOrOnDate", "afterDate", "afterOrOnDate",
    }
)  # fmt: skip


@dataclass(frozen=True)
class MemberSet:
    """`includes` / `excludes` of a policy: every member (`"*"`), or some names."""

    names: frozenset[str] | None  # None: all members

    def __contains__(self, name: str) -> bool:
        return self.names is None or name in self.names


NOTHING = MemberSet(frozenset())
EVERYTHING = MemberSet(None)


@dataclass(frozen=True)
class RowLevel:
    filters: tuple[dict[str, Any], ...]  # the query filter format; values may be placeholders
    allow_all: bool


@dataclass(frozen=True)
class AccessPolicy:
    groups: tuple[str, ...]
    conditions: tuple[Condition, ...]
    includes: MemberSet
    excludes: MemberSet
    row_level: RowLevel | None  # None: this policy says nothing about rows
    mask_includes: MemberSet
    mask_excludes: MemberSet
    file: str
    line: int | None

    def applies_to(self, roles: Iterable[str], attributes: Mapping[str, Any]) -> bool:
        roles = set(roles)
        if not (ANY_GROUP in self.groups or roles.intersection(self.groups)):
            return False
        return all(condition.holds(attributes) for condition in self.conditions)

    def allows(self, member: str) -> bool:
        return member in self.includes and member not in self.excludes

    def masks(self, member: str) -> bool:
        return member in self.mask_includes and member not in self.mask_excludes


@dataclass(frozen=True)
class Condition:
    """A policy condition (`if:`): a small boolean expression over the user's attributes.

    Cube writes these as JavaScript; the subset here — attributes, literals, `== != < <= > >=`,
    `in [...]`, `&& || !` (or `and or not`) and parentheses — is parsed, never evaluated as code.
    A missing attribute is null, and null is false.
    """

    source: str
    evaluate: Callable[[Mapping[str, Any]], Any]

    def holds(self, attributes: Mapping[str, Any]) -> bool:
        return truthy(self.evaluate(attributes))


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "off", "null")
    if isinstance(value, tuple | list):
        return bool(value)
    return bool(value)


class PolicySyntaxError(ValueError):
    pass


def parse_condition(text: Any) -> Condition:
    if isinstance(text, bool):
        return Condition(str(text).lower(), lambda _attrs, v=text: v)
    body = str(text).strip()
    if body.startswith("${") or body.startswith("{"):
        body = body[2:] if body.startswith("${") else body[1:]
        if not body.endswith("}"):
            raise PolicySyntaxError(f"condition {text!r}: unbalanced braces")
        body = body[:-1]
    tokens = _tokens(body, str(text))
    parser = _ConditionParser(tokens, str(text))
    evaluate = parser.expression()
    if parser.position != len(tokens):
        raise PolicySyntaxError(f"condition {text!r}: unexpected {tokens[parser.position][1]!r}")
    return Condition(str(text), evaluate)


def _tokens(body: str, source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(body):
        if body[position:].strip() == "":
            break
        match = _CONDITION_TOKEN.match(body, position)
        if match is None:
            raise PolicySyntaxError(f"condition {source!r}: cannot read {body[position:].strip()!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
    if not out:
        raise PolicySyntaxError(f"condition {source!r} is empty")
    return out


Evaluator = Callable[[Mapping[str, Any]], Any]
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "===": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "!==": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class _ConditionParser:
    """Recursive descent: or → and → not → comparison → primary."""

    def __init__(self, tokens: list[tuple[str, str]], source: str):
        self.tokens = tokens
        self.source = source
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise PolicySyntaxError(f"condition {self.source!r} ends too early")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expression(self) -> Evaluator:
        left = self._and()
        while self._peek() in ("||", "or"):
            self._take()
            right = self._and()
            left = (lambda a, b: lambda attrs: truthy(a(attrs)) or truthy(b(attrs)))(left, right)
        return left

    def _and(self) -> Evaluator:
        left = self._not()
        while self._peek() in ("&&", "and"):
            self._take()
            right = self._not()
            left = (lambda a, b: lambda attrs: truthy(a(attrs)) and truthy(b(attrs)))(left, right)
        return left

    def _not(self) -> Evaluator:
        if self._peek() in ("!", "not"):
            self._take()
            inner = self._not()
            return lambda attrs: not truthy(inner(attrs))
        return self._comparison()

    def _comparison(self) -> Evaluator:
        left = self._primary()
        op = self._peek()
        if op in _COMPARE:
            self._take()
            right = self._primary()
            compare = _COMPARE[op]
            return lambda attrs: _safe_compare(compare, left(attrs), right(attrs))
        if op == "in":
            self._take()
            options = self._primary()
            return lambda attrs: _contains(options(attrs), left(attrs))
        return left

    def _primary(self) -> Evaluator:
        kind, text = self._take()
        if kind == "attr":
            name = text.split(".", 1)[1]
            return lambda attrs: attrs.get(name)
        if kind == "string":
            return lambda _attrs: text[1:-1]
        if kind == "number":
            value = float(text) if "." in text else int(text)
            return lambda _attrs: value
        if text in ("true", "false"):
            return lambda _attrs: text == "true"
        if text == "null":
            return lambda _attrs: None
        if text == "(":
            inner = self.expression()
            self._expect(")")
            return inner
        if text == "[":
            items: list[Evaluator] = []
            while self._peek() != "]":
                items.append(self._primary())
                if self._peek() == ",":
                    self._take()
            self._expect("]")
            return lambda attrs: tuple(item(attrs) for item in items)
        raise PolicySyntaxError(f"condition {self.source!r}: unexpected {text!r}")

    def _expect(self, text: str) -> None:
        if self._take()[1] != text:
            raise PolicySyntaxError(f"condition {self.source!r}: expected {text!r}")


def _coerce(a: Any, b: Any) -> tuple[Any, Any]:
    """Attributes are strings; compare them with numbers and booleans as numbers and booleans."""
    if isinstance(a, str) and isinstance(b, bool):
        return truthy(a), b
    if isinstance(a, str) and isinstance(b, int | float):
        try:
            return float(a), b
        except ValueError:
            return a, str(b)
    if isinstance(b, str) and isinstance(a, int | float | bool):
        swapped = _coerce(b, a)
        return swapped[1], swapped[0]
    return a, b


def _safe_compare(compare: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    if a is None or b is None:
        return compare is _COMPARE["!="] and (a is None) != (b is None)
    a, b = _coerce(a, b)
    try:
        return compare(a, b)
    except TypeError:
        return False


def _contains(options: Any, value: Any) -> bool:
    if value is None or options is None:
        return False
    pool = options if isinstance(options, tuple | list) else (options,)
    values = value if isinstance(value, tuple | list) else (value,)
    return any(_safe_compare(_COMPARE["=="], v, o) for v in values for o in pool)


# -- reading a policy list ---------------------------------------------------------------------


def read_policies(
    raw: list[Any],
    *,
    owner: str,
    members: Mapping[str, str],
    row_filter_check: Callable[[str], str | None],
    file: str,
    line_of: Callable[[Any], int | None],
    report: Callable[[int | None, str], None],
) -> tuple[AccessPolicy, ...]:
    """Parse `raw` (the cerberus-checked `access_policy` list of `owner`).

    `members` maps each member name of the owner to its kind; `row_filter_check(name)` says why a
    member cannot be used in a row filter (or None). Problems go to `report(line, message)`.
    """
    out = []
    for entry in raw:
        line = line_of(entry)
        problems_before = _Counter(report)
        policy = _read_policy(entry, owner, members, row_filter_check, file, line, problems_before)
        if policy is not None and not problems_before.count:
            out.append(policy)
    return tuple(out)


class _Counter:
    def __init__(self, report: Callable[[int | None, str], None]):
        self.report = report
        self.count = 0

    def __call__(self, line: int | None, message: str) -> None:
        self.count += 1
        self.report(line, message)


def _read_policy(
    entry: Mapping[str, Any],
    owner: str,
    members: Mapping[str, str],
    row_filter_check: Callable[[str], str | None],
    file: str,
    line: int | None,
    report: _Counter,
) -> AccessPolicy | None:
    groups: list[str] = []
    for key in ("group", "role", "groups"):
        value = entry.get(key)
        if value is not None:
            groups.extend([value] if isinstance(value, str) else value)
    if not groups:
        report(line, "an access policy needs 'group' (or 'groups'); use group: \"*\" for everyone")
    conditions = []
    for item in entry.get("conditions") or []:
        try:
            conditions.append(parse_condition(item["if"]))
        except PolicySyntaxError as exc:
            report(line, str(exc))

    def member_set(section: str, key: str, default: MemberSet) -> MemberSet:
        value = (entry.get(section) or {}).get(key)
        if value is None:
            return default
        if isinstance(value, str):
            if value != ALL:
                report(line, f'{section}.{key}: use "*" or a list of member names, not {value!r}')
            return EVERYTHING
        names = set()
        for name in value:
            relative = _relative(name, owner)
            if relative not in members:
                report(
                    line,
                    f"{section}.{key}: '{owner}' has no member '{name}'." + did_you_mean(relative, members),
                )
            names.add(relative)
        return MemberSet(frozenset(names))

    includes = member_set("member_level", "includes", EVERYTHING)
    excludes = member_set("member_level", "excludes", NOTHING)
    mask_includes = member_set("member_masking", "includes", NOTHING)
    mask_excludes = member_set("member_masking", "excludes", NOTHING)
    row_level = None
    if entry.get("row_level") is not None:
        raw_row = entry["row_level"]
        filters = tuple(raw_row.get("filters") or ())
        for item in filters:
            _check_filter(item, owner, members, row_filter_check, line, report)
        allow_all = bool(raw_row.get("allow_all"))
        if allow_all and filters:
            report(line, "row_level: 'allow_all' and 'filters' exclude each other")
        row_level = RowLevel(tuple(_relative_filter(f, owner) for f in filters), allow_all)
    return AccessPolicy(
        tuple(groups),
        tuple(conditions),
        includes,
        excludes,
        row_level,
        mask_includes,
        mask_excludes,
        file,
        line,
    )


def _relative(name: str, owner: str) -> str:
    prefix = f"{owner}."
    return name[len(prefix) :] if isinstance(name, str) and name.startswith(prefix) else str(name)


def _relative_filter(item: Mapping[str, Any], owner: str) -> dict[str, Any]:
    for kind in ("and", "or"):
        if kind in item:
            return {kind: [_relative_filter(child, owner) for child in item[kind]]}
    out = dict(item)
    name = out.pop("member", out.pop("dimension", None))
    out["member"] = _relative(name, owner)
    return out


def _check_filter(
    item: Any,
    owner: str,
    members: Mapping[str, str],
    row_filter_check: Callable[[str], str | None],
    line: int | None,
    report: _Counter,
) -> None:
    if not isinstance(item, Mapping):
        report(line, f"row_level.filters: each filter is an object, got {item!r}")
        return
    for kind in ("and", "or"):
        if kind in item:
            children = item[kind]
            if len(item) != 1 or not isinstance(children, list) or not children:
                report(
                    line, f"row_level.filters: '{kind}' takes a non-empty list of filters and nothing else"
                )
                return
            for child in children:
                _check_filter(child, owner, members, row_filter_check, line, report)
            return
    name = item.get("member", item.get("dimension"))
    unknown = set(item) - {"member", "dimension", "operator", "values"}
    if unknown:
        report(line, f"row_level.filters: unknown key '{sorted(unknown)[0]}'")
    if not isinstance(name, str):
        report(line, f"row_level.filters: a filter needs 'member', got {dict(item)!r}")
        return
    relative = _relative(name, owner)
    if relative not in members:
        report(
            line, f"row_level.filters: '{owner}' has no member '{name}'." + did_you_mean(relative, members)
        )
        return
    if members[relative] != "dimension":
        report(line, f"row_level.filters: '{relative}' is a {members[relative]}; row filters use dimensions")
        return
    problem = row_filter_check(relative)
    if problem:
        report(line, f"row_level.filters: {problem}")
    operator = item.get("operator")
    if operator not in FILTER_OPERATORS:
        report(
            line,
            f"row_level.filters on '{relative}': unknown operator {operator!r}."
            + did_you_mean(str(operator), sorted(FILTER_OPERATORS)),
        )
    values = item.get("values")
    if operator not in ("set", "notSet") and not isinstance(values, list):
        report(line, f"row_level.filters on '{relative}': 'values' must be a list")
    for value in values or []:
        if isinstance(value, str) and "{" in value and PLACEHOLDER.match(value.strip()) is None:
            report(
                line,
                f"row_level.filters on '{relative}': {value!r} is not a user attribute reference; "
                'write it as "{ userAttributes.name }"',
            )
