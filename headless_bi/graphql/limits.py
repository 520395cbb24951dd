"""Request limits checked before anything runs: operation depth and a static cost.

Cost model (documented in headless_bi/graphql/README.md): every selected field costs 1; the fields of a list
multiply by LIST_FACTOR (a list has many items); a field that runs a warehouse query (`cube`,
`load`, `live`) adds WAREHOUSE_COST, so one document cannot fan out into dozens of warehouse
queries through aliases. Introspection fields are free: they are bounded by the schema's size.
Fragments are costed once per type and reused, so nested fragment spreads cannot blow up the check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    get_named_type,
)
from strawberry.extensions import AddValidationRules, ParserCache, SchemaExtension, ValidationCache
from strawberry.extensions.query_depth_limiter import create_validator

from headless_bi.errors import LIMIT_EXCEEDED

CACHE_SIZE = 512  # distinct documents whose parse and validation are kept
LIST_FACTOR = 10
# A typed `cube` field costs rows / 100 per selected field (at least LIST_FACTOR): its rows become
# objects on the event loop, so 50,000 rows x 15 fields (seconds of loop time) is over the default limit.
ROW_VALUES_PER_COST = 100
WAREHOUSE_COST = 100
WAREHOUSE_FIELDS = frozenset(
    {("Query", "cube"), ("Query", "load"), ("Subscription", "live"), ("Mutation", "reloadModels")}
)
INTROSPECTION_SHARE = 4  # `__schema` / `__type` walk the whole schema: each costs 1/4 of the limit


def limit_extensions(
    max_depth: int, max_complexity: int, default_limit: int = 10_000, max_rows: int = 50_000
) -> list[Callable[[], SchemaExtension]]:
    """Extension factories (a fresh instance per request, as strawberry recommends).

    The rule classes are made once per schema, so the validation cache can key on them: a document
    seen before is neither parsed nor validated again (about 1-3 ms per request in Python).
    """
    rules = [create_validator(max_depth, None), complexity_rule(max_complexity, default_limit, max_rows)]
    return [
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
    ]


def complexity_rule(
    max_complexity: int, default_limit: int = 10_000, max_rows: int = 50_000
) -> type[ValidationRule]:
    class ComplexityRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: object) -> None:
            root = self.context.schema.get_root_type(node.operation)
            if root is None:
                return
            coster = _Coster(self.context, max_complexity, default_limit, max_rows)
            cost = coster.selection(node.selection_set, root)
            if cost > max_complexity:
                name = node.name.value if node.name else "anonymous"
                self.report_error(
                    GraphQLError(
                        f"Operation '{name}' costs more than the maximum of {max_complexity} "
                        f"(each field 1, list items x{LIST_FACTOR}, each cube/load/live query "
                        f"+{WAREHOUSE_COST}); select fewer fields or split the request.",
                        node,
                        extensions={"code": LIMIT_EXCEEDED},
                    )
                )

    return ComplexityRule


class _Coster:
    def __init__(self, context: ValidationContext, ceiling: int, default_limit: int, max_rows: int):
        self.context = context
        self.ceiling = ceiling
        self.default_limit = default_limit
        self.max_rows = max_rows
        self.fragments: dict[tuple[str, str], int] = {}
        self.active: set[str] = set()

    def selection(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None) -> int:
        if selection_set is None:
            return 0
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                total += self.field(node, parent)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                target = self.context.schema.get_type(condition.name.value) if condition else parent
                total += self.selection(node.selection_set, target)
            elif isinstance(node, FragmentSpreadNode):
                total += self.spread(node.name.value)
            if total > self.ceiling:
                break  # already over: stop walking
        return total

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> int:
        name = node.name.value
        if name.startswith("__"):
            return max(1, self.ceiling // INTROSPECTION_SHARE) if name in ("__schema", "__type") else 0
        definition = parent.fields.get(name) if isinstance(parent, GraphQLObjectType) else None
        if definition is None:
            return 1  # unknown field: another rule reports it
        child = self.selection(node.selection_set, get_named_type(definition.type))
        if (parent.name, name) == ("Query", "cube"):
            # Typed rows are turned into objects on the event loop: cost grows with rows x fields.
            factor = max(LIST_FACTOR, self.rows(node) // ROW_VALUES_PER_COST)
        else:
            factor = LIST_FACTOR if _is_list(definition.type) else 1
        cost = 1 + _input_size(node.arguments) + child * factor
        if (parent.name, name) in WAREHOUSE_FIELDS:
            cost += WAREHOUSE_COST
        return cost

    def rows(self, node: FieldNode) -> int:
        """The row count a `cube` field may return: its literal `limit`, else the configured bound."""
        for argument in node.arguments or ():
            if argument.name.value == "limit":
                value = argument.value
                # over max_rows the compiler refuses it, naming the limit
                return (
                    min(int(value.value), self.max_rows) if isinstance(value, IntValueNode) else self.max_rows
                )
        return self.default_limit

    def spread(self, name: str) -> int:
        fragment = self.context.get_fragment(name)
        if fragment is None or name in self.active:
            return 0  # unknown or cyclic: other rules report it
        key = (name, fragment.type_condition.name.value)
        if key not in self.fragments:
            self.active.add(name)
            target = self.context.schema.get_type(key[1])
            self.fragments[key] = self.selection(fragment.selection_set, target)
            self.active.discard(name)
        return self.fragments[key]


def _input_size(values: Any) -> int:
    """Literal argument nodes: a where-clause of thousands of terms costs what it takes to process."""
    total = 0
    stack = list(values or ())
    while stack:
        node = stack.pop()
        total += 1
        stack.extend(getattr(node, "fields", None) or ())
        stack.extend(getattr(node, "values", None) or ())
        value = getattr(node, "value", None)
        if isinstance(value, ObjectValueNode | ListValueNode):
            stack.append(value)
    return total


def _is_list(kind: GraphQLOutputType) -> bool:
    while isinstance(kind, GraphQLNonNull | GraphQLList):
        if isinstance(kind, GraphQLList):
            return True
        kind = kind.of_type
    return False
