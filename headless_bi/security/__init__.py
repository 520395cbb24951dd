"""Who is asking and what they may see: identities, roles, access policies, audit and rate limits.

The security context travels with every query into the compiler, which applies the policies of the
model to the sqlglot tree; nothing downstream of the compiler decides access.
"""

from headless_bi.security.context import SecurityContext

__all__ = ["SecurityContext"]
