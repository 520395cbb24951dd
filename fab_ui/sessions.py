"""Signing out of the UI voids the session everywhere, not only in the browser that signed out.

Flask keeps the session in a signed cookie, so a copy taken before sign-out would otherwise stay
valid for the cookie's lifetime. Sign-out records its time (`IdentityStore.sign_out`); a cookie
signed before it is refused by the API (`Authenticator`) and treated as signed out by these pages.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, request, session
from flask_login import current_user, user_logged_out

from headless_bi.security.authenticate import session_void
from headless_bi.security.store import IdentityStore


def void_sessions_on_sign_out(app: Flask, store: IdentityStore) -> None:
    def signed_out(sender: Any, user: Any = None, **_: Any) -> None:
        user_id = getattr(user, "id", None)
        if user_id is not None:
            store.sign_out(int(user_id))

    user_logged_out.connect(signed_out, app, weak=False)

    @app.before_request
    def refuse_void_session() -> None:
        if request.path.startswith("/static/") or not current_user.is_authenticated:
            return  # FAB's assets need no identity: no metadata DB read for each of them
        cookie = request.cookies.get(app.config["SESSION_COOKIE_NAME"], "")
        serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        try:
            _, signed_at = serializer.loads(cookie, return_timestamp=True)
        except Exception:
            return
        if session_void(store.signed_out_at(int(current_user.id)), signed_at):
            session.clear()  # not logout_user(): its signal would void the user's newer sessions too
            g._login_user = app.login_manager.anonymous_user()  # type: ignore[attr-defined]
