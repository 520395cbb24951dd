"""The pages headless-bi adds to Flask-AppBuilder: a home page and a minimal catalog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask_appbuilder import BaseView, IndexView, expose, has_access

from headless_bi.semantic.model import Dimension, Measure, SemanticModel

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
    """Public cubes and views, as the API exposes them (non-public ones stay hidden)."""
    if model is None:
        return []
    entries = [
        CatalogEntry(
            "cube", cube.name, cube.title, cube.description or "",
            sum(m.public for m in cube.measures.values()), sum(d.public for d in cube.dimensions.values()),
        )
        for cube in model.cubes.values()
        if cube.public
    ]
    for view in model.views.values():
        if view.public:
            targets = [member.target for member in view.members.values()]
            entries.append(CatalogEntry(
                "view", view.name, view.title, view.description or "",
                sum(isinstance(t, Measure) for t in targets), sum(isinstance(t, Dimension) for t in targets),
            ))
    return sorted(entries, key=lambda e: (e.kind != "view", e.name))


class CatalogView(BaseView):
    """Lists the cubes and views of the running model; the full catalog browser comes later."""

    route_base = "/catalog"
    default_view = "list"

    def __init__(self, model_provider: ModelProvider | None = None) -> None:
        super().__init__()
        self.model_provider = model_provider

    @expose("/")
    @has_access
    def list(self) -> str:
        model = self.model_provider() if self.model_provider else None
        return self.render_template(
            "fab_ui/catalog.html", entries=catalog_entries(model),
            model_version=model.version if model else None, has_model=model is not None,
        )
