"""`build_schema(model, settings)`: the strawberry schema for one model version, cached.

The server asks for the schema of `runtime.model` on each request; after a reload the new version
gets its own schema while requests already running finish on the old one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLObjectType
from strawberry.schema.config import StrawberryConfig
from strawberry.types.execution import ExecutionContext, ExecutionResult

from headless_bi.graphql import resolvers
from headless_bi.graphql.errors import ErrorCodes, classify, log_errors, sanitize
from headless_bi.graphql.limits import limit_extensions
from headless_bi.graphql.typed_schema import TypedModel, build_typed_model, make_type
from headless_bi.graphql.types import DATETIME_SCALAR, DateTime
from headless_bi.runtime import Settings
from headless_bi.semantic.model import SemanticModel

_CACHE: OrderedDict[tuple[Any, Settings], strawberry.Schema] = OrderedDict()
_CACHE_SIZE = 32  # one schema per model version and per policy key in use
_LOCK = threading.Lock()


class HeadlessSchema(strawberry.Schema):
    """Logs only unexpected errors (with traceback), audits refused requests and guarantees every
    error has a code."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors)
        _audit_refused(errors, execution_context)

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        return _coded(await super().execute(*args, **kwargs))

    def execute_sync(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        return _coded(super().execute_sync(*args, **kwargs))


class _Refused(Exception):
    """A request refused before any resolver ran, as the audit log records it."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _audit_refused(errors: list[GraphQLError], execution_context: ExecutionContext | None) -> None:
    """A request refused as a whole (unknown or hidden field, cost or depth limit, syntax) never
    reaches a resolver, which audits queries: record it here, under its top-level fields' names, so
    probing for members one may not see leaves a trace too."""
    refused = [e for e in errors if e.path is None]
    context = getattr(execution_context, "context", None)
    if not refused or not isinstance(context, dict):
        return
    security, runtime = context.get("security"), context.get("runtime")
    if security is None or runtime is None or security.auth == "local":
        return
    document = getattr(execution_context, "graphql_document", None)
    fields = [
        selection.name.value
        for definition in getattr(document, "definitions", ())
        for selection in getattr(getattr(definition, "selection_set", None), "selections", ())
        if hasattr(selection, "name")
    ]
    code, message = classify(refused[0])
    runtime.guard.record(
        security,
        ",".join(dict.fromkeys(fields)) or "graphql",
        {"graphql": (execution_context.query or "")[:2000]},  # type: ignore[union-attr]
        error=_Refused(code, message),
    )


def _coded(result: ExecutionResult) -> ExecutionResult:
    """Errors raised outside the operation hooks (e.g. by an extension) skip ErrorCodes: fix them."""
    if result.errors:
        result.errors = [e if (e.extensions or {}).get("code") else sanitize(e) for e in result.errors]
    return result


def build_schema(model: SemanticModel, settings: Settings) -> strawberry.Schema:
    """The schema for `model`, built once per model version (and settings)."""
    key = (model.version or id(model), settings)
    with _LOCK:
        schema = _CACHE.get(key)
        if schema is not None:
            _CACHE.move_to_end(key)
            return schema
    schema = _build(model, settings)
    with _LOCK:
        _CACHE[key] = schema
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return schema


def _build(model: SemanticModel, settings: Settings) -> strawberry.Schema:
    typed = build_typed_model(model)
    query_fields: dict[str, Any] = {}
    if typed.result_cls is not None:
        query_fields["cube"] = (None, resolvers.cube_field(typed))
    query_fields["load"] = (None, strawberry.field(resolver=resolvers.load, name="load"))
    query_fields["meta"] = (None, strawberry.field(resolver=resolvers.meta, name="meta"))
    query_fields["ask"] = (None, strawberry.field(resolver=resolvers.ask, name="ask"))
    query = make_type("Query", query_fields, description="headless-bi: Cube-compatible queries.")
    reload = strawberry.mutation(resolver=resolvers.reload_models, name="reloadModels")
    mutation = make_type("Mutation", {"reloadModels": (None, reload)})
    live = strawberry.subscription(resolver=resolvers.live, name="live")
    subscription = make_type("Subscription", {"live": (None, live)})
    schema = HeadlessSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        config=StrawberryConfig(auto_camel_case=False, scalar_map={DateTime: DATETIME_SCALAR}),
        extensions=[
            ErrorCodes,
            *limit_extensions(
                settings.max_depth, settings.max_complexity, settings.default_limit, settings.max_rows
            ),
        ],
    )
    _fast_cube_fields(schema, typed)
    return schema


def _fast_cube_fields(schema: strawberry.Schema, typed: TypedModel) -> None:
    """`Result.<cube>` is resolved once per row, and strawberry converts its `where` / `orderBy`
    arguments into input objects on every call (half the time of a 10,000-row answer). The arguments
    were already read once from the AST by `selection`, so the per-row resolver is a plain getter."""
    result_type = schema._schema.get_type("Result")
    if not isinstance(result_type, GraphQLObjectType):
        return
    for owner in typed.owners.values():
        result_type.fields[owner.name].resolve = _getter(owner.attr)


def _getter(attr: str) -> Callable[..., Any]:
    def resolve(root: Any, info: Any, **_: Any) -> Any:
        return root.__dict__.get(attr)

    return resolve
