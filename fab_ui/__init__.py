"""The web UI of headless-bi: a Flask-AppBuilder app mounted next to the GraphQL endpoint.

Login and user/role administration come from Flask-AppBuilder; the home page and the catalog are
ours. Later issues grow it into a catalog browser, ask box, dashboards, jobs and an audit view.
"""

from fab_ui.app import ModelProvider, create_app

__all__ = ["ModelProvider", "create_app"]
