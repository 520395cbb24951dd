"""`SecurityContext`: the user, roles and attributes a query runs under.

Immutable and hashable, so governed models, schemas and cached results can be keyed by it. Policies
depend only on roles and attributes (`policy_key`); the user name is kept for the audit log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

AttributeValue = str | tuple[str, ...]

ADMIN_ROLE = "Admin"


@dataclass(frozen=True)
class SecurityContext:
    user: str
    roles: frozenset[str] = frozenset()
    attributes: tuple[tuple[str, AttributeValue], ...] = ()
    auth: str = "local"  # how the caller proved who they are: jwt, api_key, session, anonymous, local
    key_id: str | None = None  # the API key used, if any (revocation stops its live streams)
    _key: str = field(default="", init=False, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        user: str,
        roles: Iterable[str] = (),
        attributes: Mapping[str, str | Iterable[str]] | None = None,
        **options: str | None,
    ) -> SecurityContext:
        """Normalised: attribute values are strings or tuples of strings, sorted by name."""
        attrs: list[tuple[str, AttributeValue]] = []
        for name, value in sorted((attributes or {}).items()):
            attrs.append((name, value if isinstance(value, str) else tuple(str(v) for v in value)))
        return cls(user, frozenset(roles), tuple(attrs), **options)  # type: ignore[arg-type]

    @property
    def attribute_map(self) -> dict[str, AttributeValue]:
        return dict(self.attributes)

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def policy_key(self) -> str:
        """A digest of what policies read (roles and attributes): equal keys see exactly the same data."""
        if not self._key:
            text = json.dumps([sorted(self.roles), self.attributes], separators=(",", ":"))
            object.__setattr__(self, "_key", hashlib.sha256(text.encode()).hexdigest()[:32])
        return self._key
