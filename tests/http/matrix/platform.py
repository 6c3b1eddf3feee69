"""Role matrix of the platform endpoints (auth, tenancy, audit)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import create_branch, create_user
from tests.http.matrix.base import ALL, Case

ADMIN = frozenset({Role.ADMIN})
AUDIT_READERS = frozenset({Role.ADMIN, Role.AUDITOR})

CASES = [
    Case("GET", "/api/v1/auth/me", ALL),
    Case("GET", "/api/v1/organisation", ALL),
    Case("PATCH", "/api/v1/organisation", ADMIN, {"phone": "+91 20 2553 0000"}),
    Case("GET", "/api/v1/branches", ALL),
    Case("GET", "/api/v1/branches/{branch_id}", ALL),
    Case(
        "POST",
        "/api/v1/branches",
        ADMIN,
        {"code": "NEW{n}", "name": "New", "kind": "collection_centre"},
    ),
    Case("PATCH", "/api/v1/branches/{branch_id}", ADMIN, {"name": "Renamed"}),
    Case("GET", "/api/v1/users", ADMIN),
    Case("GET", "/api/v1/users/{user_id}", ADMIN),
    Case(
        "POST",
        "/api/v1/users",
        ADMIN,
        {
            "email": "m{n}@example.com",
            "full_name": "M",
            "password": "long-password-1",
            "roles": ["billing"],
        },
    ),
    Case("PATCH", "/api/v1/users/{user_id}", ADMIN, {"full_name": "Renamed"}),
    # The matrix sends JSON: an allowed caller gets past the role check to the image check.
    Case("PUT", "/api/v1/users/{user_id}/signature", ADMIN, ok_statuses=(422,)),
    Case("GET", "/api/v1/api-keys", ADMIN),
    Case("POST", "/api/v1/api-keys", ADMIN, {"name": "k", "roles": ["technician"]}),
    Case("DELETE", "/api/v1/api-keys/{key_id}", ADMIN),
    Case("GET", "/api/v1/audit/entries", AUDIT_READERS),
    Case("POST", "/api/v1/audit/verify", AUDIT_READERS),
]

# Endpoints anyone may call without a token.
PUBLIC = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
}


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Path parameters for the cases above: real rows of ``organisation``."""
    target = await create_user(session, organisation, roles=("technician",))
    branch = await create_branch(session, organisation)
    key = await client.post(
        "/api/v1/api-keys", json={"name": "target", "roles": ["technician"]}, headers=admin_headers
    )
    return {"branch_id": str(branch.id), "user_id": str(target.id), "key_id": key.json()["id"]}
