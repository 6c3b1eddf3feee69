"""Authorisation matrix: every endpoint x every role -> allowed or 403.

Adding an endpoint without adding it here fails `test_every_endpoint_is_in_the_matrix`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_branch, create_user

ALL = frozenset(Role)
ADMIN = frozenset({Role.ADMIN})
AUDIT_READERS = frozenset({Role.ADMIN, Role.AUDITOR})


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    allowed: frozenset[str]
    body: Any = None


CASES = [
    Case("GET", "/api/v1/auth/me", ALL),
    Case("GET", "/api/v1/organisation", ALL),
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
    Case("GET", "/api/v1/api-keys", ADMIN),
    Case("POST", "/api/v1/api-keys", ADMIN, {"name": "k", "roles": ["technician"]}),
    Case("DELETE", "/api/v1/api-keys/{api_key_id}", ADMIN),
    Case("GET", "/api/v1/audit/entries", AUDIT_READERS),
    Case("POST", "/api/v1/audit/verify", AUDIT_READERS),
]
PUBLIC = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
}


def test_every_endpoint_is_in_the_matrix(app: FastAPI) -> None:
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    }
    covered = {(c.method, c.path.replace("{api_key_id}", "{key_id}")) for c in CASES} | PUBLIC
    assert routes == covered


@pytest.mark.parametrize("role", sorted(Role))
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path}")
async def test_role_matrix(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    role: str,
    case: Case,
) -> None:
    caller = await create_user(session, organisation, roles=(role,))
    target = await create_user(session, organisation, roles=("technician",))
    branch = await create_branch(session, organisation)
    admin = await create_user(session, organisation, roles=("admin",))
    key = await client.post(
        "/api/v1/api-keys",
        json={"name": "target", "roles": ["technician"]},
        headers=bearer_for(admin),
    )
    n = caller.id.hex[-6:]
    path = case.path.format(branch_id=branch.id, user_id=target.id, api_key_id=key.json()["id"])
    body = case.body
    if isinstance(body, dict):
        body = {k: v.format(n=n.upper()) if isinstance(v, str) else v for k, v in body.items()}

    response = await client.request(case.method, path, json=body, headers=bearer_for(caller))

    if role in case.allowed:
        assert response.status_code < 400, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "role_required"
