"""`create_app`: the Flask-AppBuilder app the ASGI server mounts at `/` (through a2wsgi).

One app per call, with its own SQLAlchemy and AppBuilder instances (no module globals), so tests
and several servers in one process do not share state.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from flask import Flask
from flask_appbuilder import AppBuilder
from flask_appbuilder.utils.legacy import get_sqla_class
from flask_wtf.csrf import CSRFProtect

from fab_ui.ask_view import AskView
from fab_ui.audit_view import AuditLogView
from fab_ui.bootstrap import bootstrap
from fab_ui.config import flask_config
from fab_ui.sessions import void_sessions_on_sign_out
from fab_ui.views import CatalogView, HomeView, ModelProvider
from headless_bi.runtime import Settings
from headless_bi.security.store import IdentityStore

__all__ = ["ModelProvider", "create_app"]


def create_app(
    settings: Settings | None = None,
    model_provider: ModelProvider | None = None,
    *,
    var_dir: str | PathLike[str] = "var",
) -> Flask:
    """Build the UI app; on first start also create its tables, roles and admin user.

    `settings` defaults to `Settings.from_env()`. `model_provider` returns the running
    `SemanticModel` (or None) on each request, so the catalog follows model reloads; pass e.g.
    `lambda: runtime.model`. `var_dir` holds the generated secret key when settings has none.
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)  # FAB serves its assets under /static/appbuilder
    app.config.update(flask_config(settings, Path(var_dir)))
    CSRFProtect(app)  # every form POST, not only FlaskForms; FAB exempts its JSON APIs
    store = IdentityStore(settings.metadata_url)
    db = get_sqla_class()()  # FAB 5's SQLAlchemy subclass for the installed Flask-SQLAlchemy
    with app.app_context():
        db.init_app(app)
        appbuilder = AppBuilder(indexview=HomeView)
        appbuilder.init_app(app, db.session)
        appbuilder.add_view(AskView, "Ask", icon="fa-comments")
        appbuilder.add_view(CatalogView(model_provider, store), "Catalog", icon="fa-book")
        appbuilder.add_view(AuditLogView, "Audit log", icon="fa-history", category="Security")
        bootstrap(appbuilder)
    void_sessions_on_sign_out(app, store)
    return app
