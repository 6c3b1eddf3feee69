"""Role matrix of what the staff web app adds: browser sessions (public, cookie + CSRF)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.tenancy.models import Organisation
from tests.http.matrix.base import Case

CASES: list[Case] = []

# Endpoints anyone may call without a token (they check the session cookie and CSRF token).
PUBLIC = {
    ("POST", "/api/v1/auth/session"),
    ("POST", "/api/v1/auth/session/refresh"),
    ("POST", "/api/v1/auth/session/logout"),
}


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {}
