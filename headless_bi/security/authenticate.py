"""Who is calling: bearer JWTs, API keys and the admin UI's session cookie become a `SecurityContext`.

Credentials prove only the identity. Roles and attributes always come from the metadata DB, through
a short in-process cache (`cache_ttl_s`, ~2 s): per-request cost stays a dict lookup, while a
changed role, a deactivated user or a revoked key takes effect within seconds, in every worker.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from headless_bi.errors import AuthenticationError
from headless_bi.runtime import Settings
from headless_bi.security.context import SecurityContext
from headless_bi.security.metadata import secret_key
from headless_bi.security.store import ApiKeyRecord, IdentityStore, UserRecord, utcnow
from headless_bi.security.tokens import (
    issue_token,
    looks_like_api_key,
    looks_like_jwt,
    parse_api_key,
    secret_matches,
    verify_token,
)

ANONYMOUS_USER = "anonymous"
SESSION_COOKIE = "session"  # Flask's SESSION_COOKIE_NAME
SESSION_MAX_AGE_S = 31 * 86400  # Flask's PERMANENT_SESSION_LIFETIME
LAST_USED_EVERY_S = 60.0  # write a key's last_used_at at most this often

MSG_MISSING = (
    "Authentication required: send 'Authorization: Bearer <token or API key>' or 'X-API-Key: <key>'."
)
MSG_SCHEME = "The Authorization header must be 'Bearer <token or API key>'."
MSG_BAD_KEY = "Unknown or invalid API key."

T = TypeVar("T")


@dataclass
class _Entry:
    value: Any
    expires: float


class _TTLCache:
    """A tiny thread-safe cache: entries live `ttl_s` seconds; misses are cached too (unknown users)."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._data: dict[Any, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], T]) -> T:
        now = time.monotonic()
        entry = self._data.get(key)
        if entry is not None and entry.expires > now:
            return entry.value  # type: ignore[no-any-return]
        value = load()
        with self._lock:
            if len(self._data) > 10_000:  # bound the memory a flood of bogus names could take
                self._data = {k: e for k, e in self._data.items() if e.expires > now}
            self._data[key] = _Entry(value, now + self.ttl_s)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class Authenticator:
    """Turns request credentials into a `SecurityContext`; one per process and settings.

    `settings.secret_key` (else `var_dir/secret_key`) signs tokens and the UI's session cookie;
    `settings.metadata_url` holds the users; `settings.anonymous_role`, when set, lets requests
    without credentials in as user "anonymous" with that role.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        var_dir: Path = Path("var"),
        store: IdentityStore | None = None,
        cache_ttl_s: float = 2.0,
    ):
        self.settings = settings
        self.secret = secret_key(settings.secret_key, var_dir)
        self.store = store or IdentityStore(settings.metadata_url)
        self.anonymous_role = settings.anonymous_role.strip()
        self._users = _TTLCache(cache_ttl_s)
        self._keys = _TTLCache(cache_ttl_s)
        self._touched: dict[str, float] = {}

    # --- entry points ---------------------------------------------------------------------------

    def authenticate(
        self, headers: Mapping[str, str], cookies: Mapping[str, str] | None = None
    ) -> SecurityContext:
        """The caller's context, from (in order) `Authorization`, `X-API-Key`, the UI session cookie.

        Credentials that are present but bad are refused, never skipped for the next kind; with none
        at all the caller is anonymous if `anonymous_role` is set. Raises `AuthenticationError`.
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        authorization = lowered.get("authorization", "").strip()
        if authorization:
            return self.authenticate_credential(_bearer(authorization))
        api_key = lowered.get("x-api-key", "").strip()
        if api_key:
            return self._api_key_context(api_key)
        if cookies and cookies.get(SESSION_COOKIE):
            context = self._session_context(cookies[SESSION_COOKIE])
            if context is not None:
                return context
        return self.anonymous()

    def authenticate_credential(self, credential: str) -> SecurityContext:
        """A bare bearer credential: a JWT or an `hbi_...` API key (e.g. a WebSocket init payload)."""
        credential = credential.strip()
        if credential.lower().startswith("bearer "):
            credential = credential[7:].strip()
        if looks_like_api_key(credential):
            return self._api_key_context(credential)
        if looks_like_jwt(credential):
            claims = verify_token(credential, self.secret)
            user = self._user(claims.subject)
            if claims.credential is not None and claims.credential != user.credential:
                raise AuthenticationError(
                    f"The bearer token predates the current password of user '{user.username}': "
                    "request a new one."
                )
            return self._context(user, auth="jwt")
        raise AuthenticationError(
            "The bearer token is malformed: it is neither a JWT nor an API key (hbi_...)."
        )

    def anonymous(self) -> SecurityContext:
        """The anonymous context if allowed, else `AuthenticationError` (credentials missing)."""
        if not self.anonymous_role:
            raise AuthenticationError(MSG_MISSING)
        return SecurityContext.create(ANONYMOUS_USER, {self.anonymous_role}, {}, auth="anonymous")

    def recheck(self, context: SecurityContext) -> SecurityContext:
        """`context` validated again for a long-lived stream: key not revoked, user still active, and
        the current roles and attributes (which may differ from the original ones)."""
        if context.auth == "anonymous":
            return self.anonymous()
        if context.auth == "local":  # the operator's own process (CLI, tests): nothing to re-validate
            return context
        if context.auth == "api_key":
            if not context.key_id:
                raise AuthenticationError(MSG_BAD_KEY)
            key = self._key(context.key_id)
            if key is None:
                raise AuthenticationError(MSG_BAD_KEY)
            if key.revoked:
                raise AuthenticationError(_revoked(key))
            return self._context(self._user(key.username), auth="api_key", key_id=key.id)
        return self._context(self._user(context.user), auth=context.auth)

    def issue(self, username: str, expires_in_s: float | None = None) -> tuple[str, int]:
        """`(token, lifetime_s)` for an existing active user; the lifetime defaults to `token_ttl_s`."""
        user = self._user(username)
        lifetime = int(expires_in_s or self.settings.token_ttl_s)
        return issue_token(username, self.secret, expires_in_s=lifetime, credential=user.credential), lifetime

    def login(self, username: str, password: str, expires_in_s: float | None = None) -> tuple[str, int]:
        """A token for a correct name (or email) and password; slow on purpose (password hashing)."""
        user = self.store.check_password(username, password)
        if user is None:
            raise AuthenticationError("Invalid user name or password.")
        lifetime = int(expires_in_s or self.settings.token_ttl_s)
        token = issue_token(user.username, self.secret, expires_in_s=lifetime, credential=user.credential)
        return token, lifetime

    def clear_cache(self) -> None:
        self._users.clear()
        self._keys.clear()

    # --- internals ------------------------------------------------------------------------------

    def _user(self, username: str) -> UserRecord:
        user = self._users.get(("name", username), lambda: self.store.get_user(username))
        return _active(user, username)

    def _key(self, key_id: str) -> ApiKeyRecord | None:
        return self._keys.get(key_id, lambda: self.store.get_api_key(key_id))

    def _api_key_context(self, full_key: str) -> SecurityContext:
        key_id, secret = parse_api_key(full_key)
        key = self._key(key_id)
        if key is None or not secret_matches(secret, key.secret_hash):
            raise AuthenticationError(MSG_BAD_KEY)
        if key.revoked:
            raise AuthenticationError(_revoked(key))
        context = self._context(self._user(key.username), auth="api_key", key_id=key.id)
        self._note_use(key)
        return context

    def _note_use(self, key: ApiKeyRecord) -> None:
        now = time.monotonic()
        if now - self._touched.get(key.id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
            return
        self._touched[key.id] = now
        last = key.last_used_at
        if last is None or utcnow() - last > dt.timedelta(seconds=LAST_USED_EVERY_S):
            self.store.touch_api_key(key.id)

    def _session_context(self, cookie: str) -> SecurityContext | None:
        """The user logged into the admin UI, or None for a cookie without a (valid) login in it."""
        try:
            session, signed_at = _session_serializer(self.secret).loads(
                cookie, max_age=SESSION_MAX_AGE_S, return_timestamp=True
            )
            user_id = int(session["_user_id"])
        except Exception:  # a foreign, stale or logged-out cookie is simply no credential
            return None
        user = _active(
            self._users.get(("id", user_id), lambda: self.store.get_user_by_id(user_id)), f"#{user_id}"
        )
        if session_void(user.signed_out_at, signed_at):
            return None  # a copy of a cookie from before the user signed out
        return self._context(user, auth="session")

    @staticmethod
    def _context(user: UserRecord, *, auth: str, key_id: str | None = None) -> SecurityContext:
        return SecurityContext.create(user.username, user.roles, user.attributes, auth=auth, key_id=key_id)


def session_void(signed_out_at: dt.datetime | None, signed_at: dt.datetime) -> bool:
    """True for a UI session cookie signed before its user last signed out (`signed_out_at`, naive
    UTC). Cookies carry whole seconds, so one signed in the second of the sign-out is void too."""
    if signed_out_at is None:
        return False
    signed = signed_at.astimezone(dt.UTC).replace(tzinfo=None)
    return signed <= signed_out_at.replace(microsecond=0)


def _active(user: UserRecord | None, name: str) -> UserRecord:
    if user is None:
        raise AuthenticationError(f"User '{name}' does not exist.")
    if not user.active:
        raise AuthenticationError(f"User '{user.username}' is inactive.")
    return user


def _bearer(authorization: str) -> str:
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise AuthenticationError(MSG_SCHEME)
    return credential.strip()


def _revoked(key: ApiKeyRecord) -> str:
    return f"API key '{key.id}' has been revoked."


@functools.cache
def _session_serializer(secret: str) -> Any:
    """Flask's session cookie reader (`SecureCookieSessionInterface`), without a Flask app."""
    from flask.json.tag import TaggedJSONSerializer
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(
        secret,
        salt="cookie-session",
        serializer=TaggedJSONSerializer(),
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    )


_AUTHENTICATORS: dict[Settings, Authenticator] = {}
_LOCK = threading.Lock()


def authenticator_for(settings: Settings) -> Authenticator:
    """The process's `Authenticator` for `settings`, shared by the GraphQL view and the login route
    so they share one cache."""
    with _LOCK:
        found = _AUTHENTICATORS.get(settings)
        if found is None:
            found = _AUTHENTICATORS[settings] = Authenticator(settings)
        return found
