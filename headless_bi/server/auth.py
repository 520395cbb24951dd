"""`POST /auth/token`: a user name and password in, a bearer token out.

The password check runs in a worker thread: FAB's scrypt hashing takes tens of milliseconds, which
the event loop serving GraphQL and WebSocket pings must not spend. Attempts per user name are limited
(`login_attempts_per_minute`, shared through Redis when configured), right or wrong, so a password
cannot be guessed at the speed of the server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from headless_bi.errors import RATE_LIMITED, UNAUTHENTICATED, AuthenticationError, RateLimitedError
from headless_bi.runtime import Settings
from headless_bi.security.authenticate import authenticator_for
from headless_bi.security.rate_limit import RateLimiter
from headless_bi.security.tokens import parse_duration
from headless_bi.server.responses import error_response

MAX_EXPIRES_S = 30 * 86400


async def login(request: Request) -> Response:
    """`{"username", "password", "expires_in"?}` → `{"access_token", "token_type", "expires_in"}`."""
    try:
        body: Any = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        return error_response(400, 'The request body must be JSON: {"username": ..., "password": ...}.')
    if not isinstance(body, dict):
        return error_response(400, "The request body must be a JSON object with username and password.")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        return error_response(400, "Send both 'username' and 'password' as strings.")
    expires_in = body.get("expires_in")
    lifetime: int | None = None
    if expires_in is not None:
        try:
            lifetime = parse_duration(expires_in)
        except ValueError as exc:
            return error_response(400, f"expires_in: {exc}.")
        if lifetime > MAX_EXPIRES_S:
            return error_response(400, f"expires_in: at most {MAX_EXPIRES_S} seconds (30 days).")
    try:
        request.app.state.login_limiter.check(username.strip().lower())
    except RateLimitedError as exc:
        retry = max(1, round(exc.retry_after_s or 60))
        response = error_response(
            429, f"Too many sign-in attempts for this user name: retry in {retry} s.", RATE_LIMITED
        )
        response.headers["Retry-After"] = str(retry)
        return response
    authenticator = authenticator_for(request.app.state.runtime.settings)
    try:
        token, seconds = await asyncio.to_thread(authenticator.login, username, password, lifetime)
    except AuthenticationError as exc:
        response = error_response(401, exc.message, UNAUTHENTICATED)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return JSONResponse(
        {"access_token": token, "token_type": "bearer", "expires_in": seconds},
        headers={"Cache-Control": "no-store"},
    )


def login_limiter(settings: Settings) -> RateLimiter:
    """Sign-in attempts per user name and minute, shared across API processes through Redis."""
    return RateLimiter(settings.login_attempts_per_minute, settings.redis_url, prefix="hbi:login:")
