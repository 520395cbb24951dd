"""Identities, roles and access policies, enforced inside the compiled query (issue 4; not built yet)."""
