"""The GraphQL schema of the running model version, rebuilt on reload and swapped in one step.

Why a holder: the view, the WebSocket handlers and /healthz read `CurrentSchema.schema` per
operation, so after a reload new operations (including those on already open WebSocket connections)
run on the new schema while operations already executing finish on the old one. A failed rebuild is
logged and the previous schema keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from strawberry.schema import BaseSchema

from headless_bi.errors import HeadlessBIError
from headless_bi.runtime import Runtime, Settings
from headless_bi.security.context import SecurityContext
from headless_bi.security.govern import govern
from headless_bi.semantic.model import SemanticModel

log = logging.getLogger(__name__)

SchemaFactory = Callable[[SemanticModel, Settings], BaseSchema]
ContextFactory = Callable[..., Any]


def default_factories() -> tuple[SchemaFactory, ContextFactory]:
    """`build_schema` and `make_context` of `headless_bi.graphql`, imported when the app is built."""
    from headless_bi.graphql import build_schema, make_context

    return build_schema, make_context


class CurrentSchema:
    """Holds the schema for `runtime.model`; registers itself to rebuild on every reload."""

    def __init__(self, runtime: Runtime, factory: SchemaFactory):
        self._runtime = runtime
        self._factory = factory
        self._lock = threading.Lock()
        self.schema = factory(runtime.model, runtime.settings)
        self.version = runtime.model.version
        runtime.on_reload(self.rebuild)

    def for_security(self, security: SecurityContext | None) -> BaseSchema:
        """The schema `security` sees: built from the model governed for it, so members its policies
        hide are not in its types or its introspection (cached per policy key by the factory)."""
        if security is None:
            return self.schema
        model = self._runtime.model
        if model.version != self.version:  # mid-reload: stay on the schema being served
            return self.schema
        governed = govern(model, security).model
        return self.schema if governed is model else self._factory(governed, self._runtime.settings)

    def rebuild(self, model: SemanticModel) -> Callable[[], None]:
        """Build the schema for `model` before the runtime swaps models; a failure refuses the reload,
        so the model and the schema never disagree."""
        try:
            schema = self._factory(model, self._runtime.settings)
        except Exception as exc:
            log.exception("GraphQL schema for model version %s failed to build", model.version)
            message = f"the models load, but their GraphQL schema cannot be built: {exc}"
            raise HeadlessBIError(message) from None

        def install() -> None:
            with self._lock:
                self.schema, self.version = schema, model.version
            log.info("GraphQL schema now serves model version %s", model.version)

        return install
