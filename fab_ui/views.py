"""The pages headless-bi adds to Flask-AppBuilder: a home page and a minimal catalog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask_appbuilder import BaseView, IndexView, expose, has_access
from flask_login import current_user

from headless_bi.security.context import SecurityContext
from headless_bi.security.govern import govern
from headless_bi.security.store import IdentityStore
from headless_bi.semantic.catalog import members, owners
from headless_bi.semantic.model import Cube, SemanticModel

ModelProvider = Callable[[], SemanticModel | None]


class HomeView(IndexView):
    """Public landing page: what the service is and where the GraphQL endpoint lives."""

    index_template = "fab_ui/index.html"


@dataclass(frozen=True)
class CatalogEntry:
    kind: str  # "cube" or "view"
    name: str
    title: str
    description: str
    measures: int
    dimensions: int


def catalog_entries(model: SemanticModel | None) -> list[CatalogEntry]:
    """Cubes and views as `meta` lists them for the model (governed for the viewer: only what the
    viewer's policies let them use, with those members counted)."""
    if model is None:
        return []
    entries = []
    for owner in owners(model):
        visible = members(model, owner)
        entries.append(CatalogEntry(
            "cube" if isinstance(owner, Cube) else "view", owner.name, owner.title, owner.description or "",
            sum(v.kind == "measure" for v in visible), sum(v.kind == "dimension" for v in visible),
        ))  # fmt: skip
    return sorted(entries, key=lambda e: (e.kind != "view", e.name))


class CatalogView(BaseView):
    """Lists the cubes and views of the running model that the signed-in user may use."""

    route_base = "/catalog"
    default_view = "list"

    def __init__(self, model_provider: ModelProvider | None = None, store: IdentityStore | None = None):
        super().__init__()
        self.model_provider = model_provider
        self.store = store

    @expose("/")
    @has_access
    def list(self) -> str:
        model = self.model_provider() if self.model_provider else None
        if model is not None:
            model = govern(model, self._viewer()).model
        return self.render_template(
            "fab_ui/catalog.html", entries=catalog_entries(model),
            model_version=model.version if model else None, has_model=model is not None,
        )

    def _viewer(self) -> SecurityContext:
        """The signed-in user's roles and attributes, read as the API reads them."""
        user = self.store.get_user_by_id(int(current_user.id)) if self.store is not None else None
        if user is None:  # no store (a bare UI in tests): FAB's roles, no attributes
            return SecurityContext.create(current_user.username, [r.name for r in current_user.roles], {})
        return SecurityContext.create(user.username, user.roles, user.attributes, auth="session")
