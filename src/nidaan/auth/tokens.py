"""Access tokens (short-lived JWT, HS256) and opaque secrets (refresh tokens, API keys)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt

from nidaan.config import Settings
from nidaan.kit.time import utcnow

ISSUER = "nidaan"
API_KEY_PREFIX = "nid_"


class TokenSubject(Protocol):
    id: uuid.UUID
    organisation_id: uuid.UUID
    roles: list[str]
    token_version: int


class InvalidToken(Exception):
    """The token is malformed, expired or not signed by us."""


def issue_access_token(
    settings: Settings, user: TokenSubject, session_id: uuid.UUID | None = None
) -> str:
    """A short-lived token for ``user``; ``session_id`` (the refresh-token family of the
    login) lets a logout end the access tokens of that login too."""
    now = utcnow()
    claims = {
        "iss": ISSUER,
        "sub": str(user.id),
        "org": str(user.organisation_id),
        "roles": sorted(user.roles),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=settings.access_token_minutes)).timestamp()),
        "jti": secrets.token_hex(8),
        "typ": "access",
        "ver": int(user.token_version or 0),
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    return jwt.encode(claims, settings.jwt_secret(), algorithm="HS256")


# Claims of tokens whose signature and claims were checked, by (signing key, token). The same
# bytes under the same key verify the same way every time, and a checked token only stays
# valid until it expires (issued-at and not-before only become more true), so a repeat is
# answered by checking ``exp`` again: a client sends its token with every request, and the
# decode (base64, JSON, key preparation, HMAC) was a tenth of a cheap request's CPU.
_VERIFIED: dict[tuple[str, str], dict[str, Any]] = {}
_VERIFIED_MAX = 4096


def decode_access_token(settings: Settings, token: str) -> dict[str, Any]:
    secret = settings.jwt_secret()
    known = _VERIFIED.get((secret, token))
    if known is not None:
        if known["exp"] <= datetime.now(tz=UTC).timestamp():
            raise InvalidToken("Signature has expired")
        return known
    claims = _decode_access_token(secret, token)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[(secret, token)] = claims
    return claims


def _decode_access_token(secret: str, token: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=ISSUER,
            options={"require": ["exp", "sub", "org", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.get("typ") != "access":
        raise InvalidToken("not an access token")
    return claims


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str]:
    """Return (prefix, full key). The prefix finds the row; the rest is only ever hashed."""
    prefix = secrets.token_hex(6)
    return prefix, f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def split_api_key(key: str) -> str | None:
    """The lookup prefix of a well-formed API key, else None."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    prefix, _, rest = key[len(API_KEY_PREFIX) :].partition("_")
    return prefix if len(prefix) == 12 and rest else None


def secret_hash(secret: str) -> str:
    """SHA-256 of a random, high-entropy secret (a slow hash is only needed for passwords)."""
    return hashlib.sha256(secret.encode()).hexdigest()
