"""Who turns a question into a semantic query: the built-in matcher, or a language model you plug in.

A proposer only ever proposes Cube query JSON; `answer.ask` validates every proposal against the
caller's governed model before anything runs, so a proposer cannot reach a hidden member, write SQL
or widen a row filter. To plug in a larger local or hosted model, implement `Proposer` and name it
with `HBI_NLQ_PROPOSER=package.module:factory` (a class or a function returning an instance).
`Grounding.catalog()` gives the JSON description of what the caller may query, for a prompt.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, runtime_checkable

from headless_bi.errors import HeadlessBIError
from headless_bi.nlq.index import Index
from headless_bi.nlq.matcher import Interpretation, interpret
from headless_bi.semantic.model import SemanticModel


@dataclass(frozen=True)
class Grounding:
    """What a proposer may use: the caller's governed model, its index, and the fixed today."""

    model: SemanticModel
    index: Index
    today: date

    def catalog(self) -> list[dict[str, Any]]:
        """Every member the caller may use: path, kind, type, title, description, synonyms."""
        return [
            {
                "path": e.path, "kind": e.kind, "type": e.type, "title": e.title,
                "description": e.description, "synonyms": list(e.phrases),
            }
            for e in self.index.entries
            if e.kind != "entity"
        ]  # fmt: skip


@runtime_checkable
class Proposer(Protocol):
    """Proposes the semantic query for a question; `query=None` with alternatives asks back."""

    name: str

    def propose(self, question: str, grounding: Grounding) -> Interpretation: ...


class MatcherProposer:
    """The default: rules, the grounding index and local embeddings; no network, milliseconds."""

    name = "matcher"

    def propose(self, question: str, grounding: Grounding) -> Interpretation:
        return interpret(question, grounding.model, grounding.index, today=grounding.today)


def load_proposer(spec: str | None) -> Proposer:
    """`module:attr` (a class or factory) → an instance; empty → the built-in matcher."""
    if not spec:
        return MatcherProposer()
    module_name, _, attr = spec.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr or "proposer")
    except (ImportError, AttributeError) as error:
        raise HeadlessBIError(f"HBI_NLQ_PROPOSER={spec!r} cannot be loaded: {error}") from error
    proposer = target() if callable(target) and not isinstance(target, Proposer) else target
    if not isinstance(proposer, Proposer):
        raise HeadlessBIError(f"HBI_NLQ_PROPOSER={spec!r} is not a Proposer (needs name and propose())")
    return proposer
