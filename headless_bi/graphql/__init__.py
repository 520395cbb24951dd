"""The GraphQL API: a Cube-compatible typed schema generated from the model, plus `load`, `meta`,
`live` and `reloadModels`. See docs/graphql.md."""

from headless_bi.graphql.context import make_context
from headless_bi.graphql.schema import build_schema

__all__ = ["build_schema", "make_context"]
