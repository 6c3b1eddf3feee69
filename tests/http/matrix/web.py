"""Role matrix of what the staff web app adds: browser sessions (public, cookie + CSRF) and
the dashboard's analytics queries."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.tenancy.models import Organisation
from tests.http.matrix.base import Case

ANALYSTS = frozenset({Role.ADMIN, Role.PATHOLOGIST, Role.TECHNICIAN, Role.AUDITOR})

CASES: list[Case] = [
    Case("GET", "/api/v1/analytics/work-by-state", ANALYSTS),
    Case("GET", "/api/v1/analytics/tat", ANALYSTS),
    Case("GET", "/api/v1/analytics/critical-pending", ANALYSTS),
    Case("GET", "/api/v1/analytics/in-transit", ANALYSTS),
]

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
