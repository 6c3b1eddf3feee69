"""Authorisation matrix: every endpoint x every role -> allowed or 403.

Each module lists its endpoints in `tests/http/matrix/<module>.py`; an endpoint missing from
every list fails `test_every_endpoint_is_in_the_matrix`.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

import tests.http.matrix as matrix_package
from nidaan.auth.enums import Role
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user
from tests.http.matrix.base import Case, fill_body

MODULES: list[ModuleType] = [
    importlib.import_module(f"tests.http.matrix.{info.name}")
    for info in pkgutil.iter_modules(matrix_package.__path__)
    if info.name != "base"
]
CASES: list[tuple[ModuleType, Case]] = [(m, c) for m in MODULES for c in m.CASES]
PUBLIC = set().union(*(getattr(m, "PUBLIC", set()) for m in MODULES))


def test_every_endpoint_is_in_the_matrix(app: FastAPI) -> None:
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    }
    covered = {(c.method, c.path) for _, c in CASES} | PUBLIC
    assert routes - covered == set(), "endpoints missing from the role matrix"
    assert covered - routes == set(), "matrix lists endpoints that do not exist"


@pytest.mark.parametrize("role", sorted(Role))
@pytest.mark.parametrize(("module", "case"), CASES, ids=[f"{c.method} {c.path}" for _, c in CASES])
async def test_role_matrix(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    role: str,
    module: ModuleType,
    case: Case,
) -> None:
    caller = await create_user(session, organisation, roles=(role,))
    admin = await create_user(session, organisation, roles=("admin",))
    params = await module.context(session, organisation, client, bearer_for(admin))
    n = caller.id.hex[-6:].upper()
    path = case.path.format(**params)
    body = fill_body(case.body, n=n, **params)

    response = await client.request(case.method, path, json=body, headers=bearer_for(caller))

    if role in case.allowed:
        if case.ok_statuses:
            assert response.status_code in case.ok_statuses, response.text
        else:
            assert response.status_code < 400, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "role_required"
