"""Root fields: `cube` (typed, Cube-compatible), `load` (generic), `meta`, `live`, `reloadModels`.

Everything that reaches the warehouse is async and awaits `runtime.run`, which runs in a worker
thread; turning large results into rows and objects also happens off the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Callable
from datetime import date
from typing import Annotated, Any

import strawberry
from strawberry import UNSET
from strawberry.types.field import StrawberryField

from headless_bi.errors import ForbiddenError, HeadlessBIError, QueryError
from headless_bi.graphql.catalog import build_meta
from headless_bi.graphql.context import visible_model
from headless_bi.graphql.generic import columns, given, to_query_dict
from headless_bi.graphql.reshape import reshape
from headless_bi.graphql.selection import plan_query
from headless_bi.graphql.typed_schema import TypedModel, make_function
from headless_bi.graphql.types import Answer, LiveUpdate, LoadResult, Meta, QueryInput, ReloadResult
from headless_bi.live import rechecked
from headless_bi.runtime import Runtime
from headless_bi.security.context import SecurityContext
from headless_bi.semantic.compiler import compile_query
from headless_bi.service import QueryResult, bind_model

DEFAULT_LIVE_INTERVAL_S = 10.0
RECHECK_S = 5.0  # an open live stream re-checks its caller at least this often, pushes or not
_OFF_LOOP_ROWS = 1_000  # below this, converting rows is cheaper than a thread hop


def cube_field(typed: TypedModel) -> StrawberryField:
    """Cube's root `cube` field: a list of `Result`, one per row of ONE warehouse query."""

    async def resolve(info: strawberry.Info, **options: Any) -> list[Any]:
        runtime: Runtime = info.context["runtime"]
        plan = plan_query(info.selected_fields, typed, options)
        result = await runtime.run(plan.query, security=info.context.get("security"), path="cube")
        timezone = result.compiled.query.timezone

        def shape() -> list[Any]:
            dates = frozenset()
            if timezone != "UTC" and any(p.plain for p in plan.times.values()):
                cal = bind_model(runtime.model, runtime.warehouse).calendar_dates
                views = runtime.model.views.values()  # a view member is a date if its cube member is
                dates = cal | {m.path for v in views for m in v.members.values() if m.target.path in cal}
            return reshape(result.data, plan, typed, timezone, dates)

        return await _off_loop(result, shape)

    def arg(name: str, annotation: Any, description: str) -> inspect.Parameter:
        return inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=UNSET,
            annotation=Annotated[annotation | None, strawberry.argument(description=description)],
        )

    params = [
        inspect.Parameter("info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=strawberry.Info),
        arg("where", typed.root_where, "Filters by cube; each cube's own `where` adds to these."),
        arg("limit", int, "Row limit (default and maximum set by the server)."),
        arg("offset", int, "Rows to skip."),
        arg("timezone", str, "IANA time zone for buckets, date ranges and `zoned` values (default UTC)."),
        arg("renewQuery", bool, "Run on the warehouse even if a recent identical result is cached."),
        arg("ungrouped", bool, "One row per source row, no aggregation."),
        arg("orderBy", typed.root_order, "Sort keys by cube; each cube's own `orderBy` follows these."),
    ]
    resolver = make_function(resolve, params, list[typed.result_cls])  # type: ignore[name-defined]
    return strawberry.field(
        resolver=resolver,
        name="cube",
        description="Cube's GraphQL query: select measures and dimensions under each cube; "
        "the whole selection runs as one semantic query.",
    )


async def load(info: strawberry.Info, query: QueryInput) -> LoadResult:
    """Run a query given as Cube's query JSON (for tools that build queries at run time)."""
    runtime: Runtime = info.context["runtime"]
    query_dict = to_query_dict(query)
    result = await runtime.run(query_dict, security=info.context.get("security"), path="load")
    data = await _off_loop(result, lambda: result.data)
    return LoadResult(
        data=data,
        annotation=result.annotation,
        columns=columns(result.compiled.annotations),
        total=result.total,
        sql=result.sql if info.context.get("can_see_sql", True) else None,
    )


async def ask(info: strawberry.Info, question: str, today: date | None = None) -> Answer:
    """Answer a question in plain language: the semantic query it became, read back, with the rows
    (run under the caller's access like `load`), a chart type, a narrative and other readings.
    `today` fixes the day relative dates ("last quarter") count from."""
    runtime: Runtime = info.context["runtime"]
    security = info.context.get("security")
    answer = await asyncio.to_thread(runtime.ask, question, security=security, today=today)
    return Answer(
        question=answer.question,
        query=answer.query,
        restatement=answer.restatement,
        confidence=answer.confidence,
        data=answer.data,
        columns=columns(answer.annotations),
        chart=answer.chart,
        narrative=answer.narrative,
        alternatives=answer.alternatives,
        clarification=answer.clarification,
        titles=answer.titles,
        comparison=answer.comparison,
        sql=answer.sql if info.context.get("can_see_sql", True) else None,
    )


def meta(info: strawberry.Info) -> Meta:
    """The cubes and views of the running model with the members the caller may use."""
    return build_meta(visible_model(info.context))


async def live(
    info: strawberry.Info, query: QueryInput, intervalSeconds: int | None = UNSET
) -> AsyncGenerator[LiveUpdate, None]:
    """Re-run `query` every `intervalSeconds` (default 10) and push the rows; shared between clients
    with the same query, interval and security context."""
    runtime: Runtime = info.context["runtime"]
    query_dict = to_query_dict(query)
    minimum = runtime.settings.live_min_interval_s
    interval = float(intervalSeconds) if given(intervalSeconds) else max(DEFAULT_LIVE_INTERVAL_S, minimum)
    if interval < minimum:
        raise QueryError(
            f"intervalSeconds must be at least {minimum:g}, got {intervalSeconds}", value=interval
        )
    hub = getattr(runtime, "live", None)
    if hub is None:
        raise HeadlessBIError("live queries are not enabled on this server")
    security = info.context.get("security")
    await asyncio.to_thread(_validate, runtime, query_dict, security)  # errors now, not on the first push
    recheck = info.context.get("recheck")

    async def check() -> None:
        # Each push, and each poll interval without one, is for who the caller is now: a revoked
        # key, a disabled user or a changed role or attribute ends the stream with the error.
        if recheck is not None and security is not None:
            current = await asyncio.to_thread(recheck, security)  # raises once the key or user is gone
            if current.policy_key != security.policy_key:
                raise ForbiddenError("your roles or attributes changed: subscribe again to see what you may")

    updates = hub.subscribe(query_dict, interval, security)
    async for update in rechecked(updates, min(interval, RECHECK_S), check):
        yield LiveUpdate(data=update.data, refreshedAt=update.refreshed_at)


async def reload_models(info: strawberry.Info) -> ReloadResult:
    """Load the model files again; on an error the running version stays in place."""
    if not info.context.get("is_admin", True):
        raise ForbiddenError("reloadModels is for administrators")
    runtime: Runtime = info.context["runtime"]
    model = await asyncio.to_thread(runtime.reload)
    return ReloadResult(version=model.version, cubes=list(model.cubes), views=list(model.views))


def _validate(runtime: Runtime, query: dict[str, Any], security: SecurityContext | None) -> None:
    """Compile once before subscribing; for a caller this is the audited, rate-limited event (the
    polls that follow are not: one subscription is one entry in the audit log)."""
    settings = runtime.settings
    try:
        if security is not None:
            runtime.guard.admit(security)
        compiled = compile_query(
            bind_model(runtime.model, runtime.warehouse),
            query,
            dialect=runtime.warehouse.dialect,
            default_limit=settings.default_limit,
            max_limit=settings.max_rows,
            security=security,
        )
    except Exception as exc:
        if security is not None:
            runtime.guard.record(security, "live", query, error=exc)
        raise
    if security is not None:
        runtime.guard.record(security, "live", query, sql=compiled.sql)


async def _off_loop(result: QueryResult, work: Callable[[], Any]) -> Any:
    if result.table.num_rows < _OFF_LOOP_ROWS:
        return work()
    return await asyncio.to_thread(work)
