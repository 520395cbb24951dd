"""The Ask page: a question box whose answer is an editable semantic query, a table and a chart.

The page is only a client of the GraphQL API: the browser calls `ask` and `load` at `/graphql` with
the UI session cookie, so the server applies the user's policies (hidden members, row filters,
rate limit, audit) exactly as for any other caller. Flask renders the shell and serves the page's
script and plotly.js (from the installed `plotly` package: the service runs without network).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flask import Response, abort, send_file
from flask_appbuilder import BaseView, expose, has_access

ASSETS = Path(__file__).resolve().parent / "static" / "fab_ui"
ASSET_FILES = {"ask.js": "text/javascript", "ask.css": "text/css"}
ASSET_MAX_AGE_S = 3600


def plotly_js() -> Path:
    """plotly.min.js as shipped inside the `plotly` Python package (no CDN)."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


class AskView(BaseView):
    """`/ask/`: the page for signed-in users; its assets are public (they hold no data)."""

    route_base = "/ask"
    default_view = "ask"

    @expose("/")
    @has_access
    def ask(self) -> str:
        # The assets are cached for an hour; their mtime in the URL makes a new version load at once.
        version = int(max((ASSETS / name).stat().st_mtime for name in ASSET_FILES))
        return self.render_template("fab_ui/ask.html", asset_version=version)

    @expose("/assets/plotly.min.js")
    def plotly(self) -> Response:
        return send_file(plotly_js(), mimetype="text/javascript", max_age=ASSET_MAX_AGE_S)

    @expose("/assets/<name>")
    def asset(self, name: str) -> Response:
        if name not in ASSET_FILES:
            abort(404)
        return send_file(ASSETS / name, mimetype=ASSET_FILES[name], max_age=ASSET_MAX_AGE_S)
