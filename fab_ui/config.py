"""Turn service `Settings` into the Flask config Flask-AppBuilder reads at init time.

FAB reads `app.config` while it initialises (auth type, rate limiter, security views), so every
key must be in place before `AppBuilder.init_app`; this module is the one place that builds them.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from flask_appbuilder.const import AUTH_DB
from sqlalchemy.engine import make_url

from headless_bi.runtime import Settings

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret_key"


def metadata_uri(url: str) -> str:
    """The SQLAlchemy URL for the metadata DB.

    A relative SQLite path is made absolute against the working directory (Flask-SQLAlchemy would
    otherwise put it under Flask's instance folder) and its folder is created. A bare
    `postgresql://` gets the psycopg 3 driver, the one installed (SQLAlchemy's default is psycopg2).
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            return parsed.set(database=str(path)).render_as_string(hide_password=False)
    return url


def secret_key(settings: Settings, var_dir: Path) -> str:
    """`settings.secret_key`, else a random key kept in `var_dir/secret_key` (mode 0600).

    Persisting the generated key keeps login sessions valid across restarts. The file is created
    exclusively, so workers starting together all end up with the first one's key.
    """
    if settings.secret_key:
        return settings.secret_key
    path = var_dir / SECRET_KEY_FILE
    var_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
        log.info("Generated a secret key in %s", path)
    for _ in range(20):  # a worker that lost the race may read before the winner has written
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.05)
    raise RuntimeError(f"{path} is empty: delete it to generate a new key, or set HBI_SECRET_KEY")


def flask_config(settings: Settings, var_dir: Path) -> dict[str, Any]:
    """Every config key the app needs, with the values that differ from the libraries' defaults."""
    uri = metadata_uri(settings.metadata_url)
    return {
        "APP_NAME": "headless-bi",
        "SECRET_KEY": secret_key(settings, var_dir),
        "DEBUG": False,
        "SQLALCHEMY_DATABASE_URI": uri,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True} if not uri.startswith("sqlite") else {},
        "AUTH_TYPE": AUTH_DB,
        "AUTH_USER_REGISTRATION": False,
        "WTF_CSRF_ENABLED": True,
        # Flask-Limiter warns unless a storage is named; FAB limits nothing unless told to.
        "RATELIMIT_STORAGE_URI": "memory://",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "FAB_API_SWAGGER_UI": False,
        # Served by the ASGI app next to this one, not by Flask.
        "HBI_GRAPHQL_URL": "/graphql",
    }
