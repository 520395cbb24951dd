"""The metadata database (users, roles, API keys, audit log) and the signing secret, shared by the
API server, the CLI and the Flask-AppBuilder UI so all three agree on where they live."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret_key"

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


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


def metadata_engine(url: str) -> Engine:
    """One SQLAlchemy engine per metadata URL in this process."""
    uri = metadata_uri(url)
    with _LOCK:
        engine = _ENGINES.get(uri)
        if engine is None:
            options = {} if uri.startswith("sqlite") else {"pool_pre_ping": True}
            engine = _ENGINES[uri] = create_engine(uri, **options)
        return engine


def secret_key(configured: str, var_dir: Path) -> str:
    """`configured`, else a random key kept in `var_dir/secret_key` (mode 0600).

    Persisting the generated key keeps login sessions and bearer tokens valid across restarts. The
    file is created exclusively, so workers starting together all end up with the first one's key.
    """
    if configured:
        return configured
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
