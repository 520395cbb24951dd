"""Turn service `Settings` into the Flask config Flask-AppBuilder reads at init time.

FAB reads `app.config` while it initialises (auth type, rate limiter, security views), so every
key must be in place before `AppBuilder.init_app`; this module is the one place that builds them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask_appbuilder.const import AUTH_DB

from headless_bi.runtime import Settings
from headless_bi.security.metadata import metadata_uri, secret_key

log = logging.getLogger(__name__)

def flask_config(settings: Settings, var_dir: Path) -> dict[str, Any]:
    """Every config key the app needs, with the values that differ from the libraries' defaults."""
    uri = metadata_uri(settings.metadata_url)
    return {
        "APP_NAME": "headless-bi",
        "SECRET_KEY": secret_key(settings.secret_key, var_dir),
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
