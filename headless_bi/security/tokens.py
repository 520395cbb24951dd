"""Bearer tokens (HS256 JWTs) and API key strings: issuing, parsing and verifying, with no DB access.

A JWT proves only *who* the caller is (`sub`); roles and attributes are read from the metadata DB on
each request, so a role change or a deactivated user takes effect without waiting for tokens to expire.
API keys are `hbi_<id>_<secret>`: the id finds the row, and only a SHA-256 of the secret is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

import jwt

from headless_bi.errors import AuthenticationError

ALGORITHM = "HS256"
KEY_PREFIX = "hbi_"
_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_KEY_RE = re.compile(r"^hbi_(k_[a-z0-9]{8})_([A-Za-z0-9_-]{16,200})$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

# One message per way a token can fail, so a client (and its developer) knows what to fix.
MSG_EXPIRED = "The bearer token has expired: request a new one."
MSG_SIGNATURE = "The bearer token's signature is invalid: it was altered or signed with another key."
MSG_MALFORMED = "The bearer token is malformed: it is neither a JWT nor an API key (hbi_...)."
MSG_IMMATURE = "The bearer token is not valid yet (issued in the future): check the clocks."
MSG_CLAIMS = "The bearer token lacks a required claim (sub, iat, exp, jti)."


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    issued_at: int
    expires_at: int
    token_id: str
    credential: str | None = None  # fingerprint of the user's password hash when it was issued


def issue_token(
    username: str,
    secret: str,
    *,
    expires_in_s: float,
    now: float | None = None,
    credential: str | None = None,
) -> str:
    """A signed token for `username` valid `expires_in_s` seconds from `now` (default: the clock).
    With `credential` (the user's `password_fingerprint`) it dies with that password: a changed
    password, or a new user given a deleted user's name, does not inherit it."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": username,
        "iat": issued,
        "exp": issued + max(1, int(expires_in_s)),
        "jti": secrets.token_hex(8),
    }
    if credential is not None:
        claims["pwf"] = credential
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str, *, leeway_s: float = 5.0) -> TokenClaims:
    """The claims of a valid token; `AuthenticationError` saying exactly why one is refused."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=leeway_s,
            options={"require": ["sub", "iat", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationError(MSG_EXPIRED) from None
    except jwt.InvalidSignatureError:
        raise AuthenticationError(MSG_SIGNATURE) from None
    except jwt.ImmatureSignatureError:
        raise AuthenticationError(MSG_IMMATURE) from None
    except jwt.MissingRequiredClaimError:
        raise AuthenticationError(MSG_CLAIMS) from None
    except jwt.InvalidTokenError:  # bad base64/JSON, wrong algorithm, bad claim types
        raise AuthenticationError(MSG_MALFORMED) from None
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise AuthenticationError(MSG_CLAIMS)
    credential = claims.get("pwf")
    if credential is not None and not isinstance(credential, str):
        raise AuthenticationError(MSG_MALFORMED)
    return TokenClaims(subject, int(claims["iat"]), int(claims["exp"]), str(claims["jti"]), credential)


def password_fingerprint(password_hash: str | None) -> str:
    """A short digest of a stored password hash: it changes with the password, reveals nothing."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def looks_like_jwt(text: str) -> bool:
    return text.count(".") == 2


# --- API keys -----------------------------------------------------------------------------------


def new_api_key() -> tuple[str, str]:
    """`(key_id, full_key)`: a short public id `k_xxxxxxxx` and the `hbi_<id>_<secret>` shown once."""
    key_id = "k_" + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(8))
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def looks_like_api_key(text: str) -> bool:
    return text.startswith(KEY_PREFIX)


def parse_api_key(text: str) -> tuple[str, str]:
    """`(key_id, secret)` of a full key; `AuthenticationError` if it is not shaped like one."""
    found = _KEY_RE.match(text.strip())
    if found is None:
        raise AuthenticationError("The API key is malformed: expected hbi_<id>_<secret> as issued.")
    return found.group(1), found.group(2)


def hash_secret(secret: str) -> str:
    """What the DB keeps of a key: the secrets are random (256 bits), so a plain SHA-256 suffices."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


# --- durations ----------------------------------------------------------------------------------


def parse_duration(text: str | float) -> int:
    """Seconds from `3600`, `90s`, `30m`, `1h` or `7d`; `ValueError` with a readable message otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        found = _DURATION_RE.match(str(text))
        if found is None:
            raise ValueError(f"'{text}' is not a duration: use seconds or a number with s, m, h or d (1h)")
        seconds = float(found.group(1)) * _UNITS[found.group(2).lower()]
    if seconds < 1:
        raise ValueError(f"'{text}' is too short: a duration must be at least one second")
    return int(seconds)
