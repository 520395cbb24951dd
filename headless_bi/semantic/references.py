"""Member SQL snippets (`{CUBE}.col`, `{member}`, `{cube.member}`) parsed once into sqlglot trees.

A snippet's references are swapped for placeholder identifiers, the text is parsed by sqlglot in
the model's dialect, and the placeholders are replaced by trees: cube references become the cube's
name as table qualifier, member references the member's own resolved tree. Measures referenced by
`number` measures stay as `MeasureRef` nodes that the compiler replaces after aggregation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

REFERENCE = re.compile(r"\$?\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))?\s*\}")
PLACEHOLDER = "__hbi_ref_{}__"


class MeasureRef(exp.Expression):
    """A reference to a measure inside a `number` measure; never reaches SQL generation."""

    arg_types = {"this": True}

    @property
    def path(self) -> str:
        return self.this


@dataclass(frozen=True)
class Reference:
    """One `{...}` in a snippet: `owner` is CUBE, a cube name or a member name."""

    owner: str
    member: str | None
    followed_by_column: bool


class SnippetError(ValueError):
    """A snippet that cannot be parsed; the loader turns it into a located model issue."""


def split_references(sql: str) -> tuple[str, list[Reference]]:
    """Replace each `{...}` by a placeholder identifier and list the references in order."""
    refs: list[Reference] = []

    def swap(match: re.Match[str]) -> str:
        rest = sql[match.end() : match.end() + 1]
        refs.append(Reference(match.group(1), match.group(2), rest == "."))
        return PLACEHOLDER.format(len(refs) - 1)

    return REFERENCE.sub(swap, sql), refs


def parse_snippet(sql: str, dialect: str, *, query: bool = False) -> exp.Expression:
    """One SQL expression (or, with `query`, one SELECT); anything else is a SnippetError."""
    try:
        trees = sqlglot.parse(sql, dialect=dialect)
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        raise SnippetError(f"cannot parse SQL {sql!r}: {first.get('description', exc)}") from None
    except (SqlglotError, RecursionError) as exc:
        raise SnippetError(f"cannot parse SQL {sql!r}: {type(exc).__name__}") from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise SnippetError(f"SQL {sql!r} must be a single {'query' if query else 'expression'}")
    tree = trees[0]
    if query:
        if not isinstance(tree, exp.Query):
            raise SnippetError(f"SQL {sql!r} must be a SELECT query")
    elif not isinstance(tree, exp.Condition | exp.Subquery) or isinstance(tree, exp.Alias):
        raise SnippetError(
            f"SQL {sql!r} must be an expression (a column, function or condition; "
            "wrap a subquery in parentheses)"
        )
    return tree


def placeholder_index(name: str) -> int | None:
    if name.startswith("__hbi_ref_") and name.endswith("__"):
        return int(name[len("__hbi_ref_") : -2])
    return None


def substitute(
    tree: exp.Expression,
    refs: list[Reference],
    *,
    on_cube_column: Callable[[Reference, exp.Column], exp.Expression],
    on_member: Callable[[Reference], exp.Expression],
    on_plain_column: Callable[[exp.Column], exp.Expression],
) -> exp.Expression:
    """Rebuild `tree` with placeholders and unqualified columns replaced by the callbacks' trees."""

    def visit(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Column):
            return node
        table_index = placeholder_index(node.table) if node.table else None
        if table_index is not None:
            return on_cube_column(refs[table_index], node)
        name_index = placeholder_index(node.name)
        if name_index is not None and not node.table:
            return on_member(refs[name_index])
        if not node.table:
            return on_plain_column(node)
        return node

    return tree.transform(visit, copy=False)


def replace_measure_refs(tree: exp.Expression, value_of: Callable[[str], exp.Expression]) -> exp.Expression:
    """`tree` with every MeasureRef (the root included) replaced by `value_of(path)`."""
    return tree.transform(
        lambda node: value_of(node.path) if isinstance(node, MeasureRef) else node, copy=False
    )


def parenthesize(tree: exp.Expression) -> exp.Expression:
    """Wrap a substituted tree so operator precedence survives the splice."""
    if isinstance(
        tree, exp.Column | exp.Literal | exp.Paren | exp.Func | MeasureRef | exp.Null | exp.Boolean
    ):
        return tree
    return exp.Paren(this=tree)
