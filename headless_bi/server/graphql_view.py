"""strawberry's ASGI GraphQL app, adapted: per-operation schema lookup, JSON errors, our context.

- `schema` is read from `CurrentSchema` on every use, so a reload needs no new app and drops no
  connection; the WebSocket handlers look it up per operation too.
- GraphiQL loads its scripts from this server (`graphiql.py`), not a CDN.
- Every request is authenticated (`security/authenticate.py`) before anything runs: HTTP from its
  headers and the admin UI's session cookie, refused with 401 and a JSON error body; a WebSocket
  from its handshake headers, or from `Authorization` in the `connection_init` payload (browsers
  cannot set headers on WebSockets), refused by closing with 4401 (legacy protocol: connection_error).
  Each later operation on the connection re-checks that identity (a revoked key closes it with 4401;
  changed roles or attributes apply to the next operation).
  Only the GraphiQL page itself is served without credentials.
- HTTP errors strawberry answers as plain text (bad JSON, unsupported content type, wrong method)
  become JSON error bodies; a JSON body that is not an object or a list is refused with 400 instead
  of failing inside strawberry.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage

from headless_bi.errors import UNAUTHENTICATED, AuthenticationError
from headless_bi.runtime import Runtime
from headless_bi.security.authenticate import SESSION_COOKIE, Authenticator, authenticator_for
from headless_bi.security.context import SecurityContext
from headless_bi.server.graphiql import local_html
from headless_bi.server.responses import error_response
from headless_bi.server.schemas import ContextFactory, CurrentSchema

_JSON_TYPES = ("application/json",)
_CREDENTIAL_KEYS = ("authorization", "x-api-key")
_WS_AUTHENTICATED = "_hbi_ws_authenticated"  # context key: connection_init already authenticated
# Before connection_init a WebSocket context has no identity; strawberry runs no operation until then.
_PENDING = SecurityContext.create("unauthenticated", (), {}, auth="anonymous")
# The caller of the operation running in this task: the schema it sees depends on its policies.
_CALLER: ContextVar[SecurityContext | None] = ContextVar("hbi_caller")


class _CurrentSchemaMixin:
    """Reads the schema from the view at each operation instead of keeping the one from connect time,
    and re-checks the caller before each operation."""

    view: Any
    websocket: Any
    context: Any

    @property
    def schema(self) -> BaseSchema:
        context = getattr(self, "context", None)
        security = context.get("security") if isinstance(context, dict) else _PENDING
        return self.view.schemas.for_security(security)

    @schema.setter
    def schema(self, value: BaseSchema) -> None:  # the base __init__ assigns it; the view owns it
        pass

    async def _caller_still_allowed(self) -> bool:
        """Every operation on an open connection runs as the caller is now (roles, attributes, key
        still valid), not as they were at connection_init: a refused caller's connection closes."""
        error = await self.view.refresh_ws_identity(self.context)
        if error is not None:
            await self.websocket.close(code=4401, reason=_close_reason(error))
        return error is None


class _TransportWSHandler(_CurrentSchemaMixin, BaseGraphQLTransportWSHandler):
    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Authenticate first, so a refusal closes with 4401 and the reason (strawberry's own
        rejection path closes with a bare 4403)."""
        payload = message.get("payload")
        if not self.connection_init_received and not self.connection_timed_out:
            error = self.view.authenticate_ws(self.context, payload if isinstance(payload, dict) else None)
            if error is not None:
                await self.websocket.close(code=4401, reason=_close_reason(error))
                return
        await super().handle_connection_init(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and not await self._caller_still_allowed():
            return
        await super().handle_subscribe(message)


class _LegacyWSHandler(_CurrentSchemaMixin, BaseGraphQLWSHandler):
    async def handle_start(self, message: StartMessage) -> None:
        if self.context.get(_WS_AUTHENTICATED) and not await self._caller_still_allowed():
            return
        await super().handle_start(message)


class GraphQLView(GraphQL):
    graphql_transport_ws_handler_class = _TransportWSHandler
    graphql_ws_handler_class = _LegacyWSHandler

    def __init__(self, runtime: Runtime, schemas: CurrentSchema, make_context: ContextFactory):
        self._schemas = schemas
        self._runtime = runtime
        self._make_context = make_context
        self.authenticator: Authenticator = authenticator_for(runtime.settings)
        super().__init__(schemas.schema, graphql_ide="graphiql")
        self._ide_html = local_html(self.graphql_ide_html)

    @property
    def schemas(self) -> CurrentSchema:
        return self._schemas

    @property
    def schema(self) -> BaseSchema:
        """The caller's schema during an operation (see `execute_operation`), else the model's."""
        caller = _CALLER.get(None)
        return self._schemas.schema if caller is None else self._schemas.for_security(caller)

    @schema.setter
    def schema(self, value: BaseSchema) -> None:
        self._schemas.schema = value

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        """Runs the operation on the schema of the caller's security context."""
        context = kwargs["context"] if "context" in kwargs else args[3]
        token = _CALLER.set(context.get("security") if isinstance(context, dict) else _PENDING)
        try:
            return await super().execute_operation(*args, **kwargs)
        finally:
            _CALLER.reset(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive=receive)
        refusal = _refuse_content_type(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        try:
            response = await self.run(request)
        except HTTPException as exc:
            response = error_response(exc.status_code, exc.reason)
        except AuthenticationError as exc:
            response = error_response(401, exc.message, UNAUTHENTICATED)
            response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._ide_html)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Any:
        """The resolvers' context under the caller's `SecurityContext` (`security`).

        HTTP without valid credentials raises `AuthenticationError` (a 401), except for the GraphiQL
        page. A WebSocket gets its identity from the handshake here, or later from connection_init.
        """
        if isinstance(request, WebSocket):
            try:
                security = self.authenticator.authenticate(request.headers, request.cookies)
            except AuthenticationError:
                security = _PENDING  # connection_init may still bring credentials
        elif _is_ide_page(request):
            try:
                security = self.authenticator.authenticate(request.headers, request.cookies)
            except AuthenticationError:
                security = _PENDING  # only the page is served: no operation runs on this context
        else:
            _refuse_cross_site(request)
            security = self.authenticator.authenticate(request.headers, request.cookies)
        return self._make_context(
            self._runtime,
            request=request,
            response=response,
            security=security,
            recheck=self.authenticator.recheck,
        )

    def authenticate_ws(self, context: Any, payload: dict[str, Any] | None) -> str | None:
        """At connection_init: the identity from the payload's `Authorization` (or `X-API-Key`), else
        from the handshake; installs it in `context` and returns None, or returns why it is refused."""
        request: WebSocket = context["request"]
        credentials = {
            key: value
            for key, value in (payload or {}).items()
            if isinstance(value, str) and key.lower() in _CREDENTIAL_KEYS
        }
        try:
            if credentials:
                security = self.authenticator.authenticate(credentials)
            else:
                security = self.authenticator.authenticate(request.headers, request.cookies)
        except AuthenticationError as exc:
            return exc.message
        fresh = self._make_context(
            self._runtime,
            request=request,
            response=context.get("response"),
            security=security,
            recheck=self.authenticator.recheck,
        )
        params = context.get("connection_params")
        context.clear()
        context.update(fresh)
        context["connection_params"] = params
        context[_WS_AUTHENTICATED] = True
        return None

    async def refresh_ws_identity(self, context: Any) -> str | None:
        """Before each operation on a WebSocket: the connection's identity validated again (through
        the authenticator's short cache) and the context rebuilt if roles or attributes changed;
        returns why it is refused, else None."""
        security: SecurityContext | None = context.get("security")
        if security is None or security is _PENDING:
            return None
        try:
            current = await asyncio.to_thread(self.authenticator.recheck, security)
        except AuthenticationError as exc:
            return exc.message
        if current != security:
            fresh = self._make_context(
                self._runtime,
                request=context["request"],
                response=context.get("response"),
                security=current,
                recheck=self.authenticator.recheck,
            )
            context.update(fresh)
        return None

    async def on_ws_connect(self, context: Any) -> Any:
        """The legacy graphql-ws protocol authenticates here (graphql-transport-ws already has)."""
        if not context.get(_WS_AUTHENTICATED):
            error = self.authenticate_ws(context, context.get("connection_params"))
            if error is not None:
                raise ConnectionRejectionError({"message": error, "extensions": {"code": UNAUTHENTICATED}})
        return await super().on_ws_connect(context)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            parsed = super().parse_json(data)
        except UnicodeDecodeError:
            raise HTTPException(400, "The request body is not UTF-8 text.") from None
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object (or a list of them).")
        return parsed


def _refuse_cross_site(request: Request) -> None:
    """A request signed in only by the UI's session cookie must show it was not sent by another site:
    a JSON POST (no site can send one cross-origin without a CORS grant, and none is given) or an
    `X-Requested-With` header. A link to `/graphql?query=...` on another site then runs nothing."""
    headers = request.headers
    if "authorization" in headers or "x-api-key" in headers or SESSION_COOKIE not in request.cookies:
        return
    if request.method == "POST" and headers.get("content-type", "").startswith("application/json"):
        return
    if headers.get("x-requested-with"):
        return
    raise AuthenticationError(
        "a request signed in by the UI's session cookie must be a JSON POST or carry an "
        "X-Requested-With header (protection against cross-site requests)"
    )


def _is_ide_page(request: Request) -> bool:
    """strawberry's own test for serving GraphiQL (`should_render_graphql_ide`)."""
    accept = request.headers.get("accept", "")
    return (
        request.method == "GET"
        and request.query_params.get("query") is None
        and ("text/html" in accept or "*/*" in accept)
    )


def _close_reason(message: str) -> str:
    """A WebSocket close reason is at most 123 bytes of UTF-8."""
    encoded = message.encode()
    return message if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "..."


def _refuse_content_type(request: Request) -> Response | None:
    """415 for a POST whose body is not JSON (strawberry would answer a plain-text 400)."""
    if request.method != "POST":
        return None
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in _JSON_TYPES:
        return None
    shown = media_type or "none"
    return error_response(
        415, f"Unsupported content type '{shown}': send the GraphQL request as application/json."
    )
