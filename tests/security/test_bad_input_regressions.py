"""Finding 7: the probe's 500s on bad input, one by one (the fuzz run covers the rest)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_branch, create_user
from tests.security.openapi_walk import ALL_ROLES


@pytest.fixture
async def headers(session: AsyncSession, organisation: Organisation) -> dict[str, str]:
    return bearer_for(await create_user(session, organisation, roles=ALL_ROLES))


LISTS = [
    "/api/v1/orders",
    "/api/v1/samples",
    "/api/v1/patients",
    "/api/v1/users",
    "/api/v1/audit/entries",
    "/api/v1/catalog/tests",
    "/api/v1/instruments",
    "/api/v1/critical-alerts",
    "/api/v1/worklists/pending-entry",
    "/api/v1/sync/conflicts",
]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("page", ["99999999999999999999", "9223372036854775807", "2147483648"])
async def test_a_huge_page_number_is_a_clear_422_or_an_empty_page(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, page: str
) -> None:
    response = await client.get(f"{path}?page={page}&limit=100", headers=headers)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["errors"][0]["field"] == "query.page"


@pytest.mark.parametrize(
    "field", ["delta_percent", "delta_absolute", "price", "tat_minutes", "delta_window_days"]
)
@pytest.mark.parametrize("value", ["3.6e16", "1e400", "-1e308", 10**30])
async def test_numeric_overflow_in_a_catalogue_test_is_422(
    client: httpx.AsyncClient, headers: dict[str, str], field: str, value: object
) -> None:
    body = {
        "code": "OVF",
        "name": "Overflow",
        "department": "Biochemistry",
        "specimen_type": "serum",
        "container": "sst_yellow",
        "result_type": "numeric",
        field: value,
    }
    response = await client.post("/api/v1/catalog/tests", json=body, headers=headers)
    assert response.status_code == 422, response.text


async def test_reusing_another_organisations_instrument_id_reveals_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
    headers: dict[str, str],
) -> None:
    theirs = await create_branch(session, other_organisation, code="LAB")
    mine = await create_branch(session, organisation, code="LAB")
    their_admin = bearer_for(await create_user(session, other_organisation, roles=ALL_ROLES))

    def body(branch_id: object, name: str, instrument_id: str | None = None) -> dict:
        out = {
            "name": name,
            "driver": "generic-hl7",
            "transport": "tcp-server",
            "port": 2575,
            "branch_id": str(branch_id),
        }
        if instrument_id:
            out["id"] = instrument_id
        return out

    created = await client.post(
        "/api/v1/instruments", json=body(theirs.id, "Their analyzer"), headers=their_admin
    )
    assert created.status_code == 201, created.text
    taken_id = created.json()["id"]
    own = await client.post(
        "/api/v1/instruments", json=body(mine.id, "My analyzer"), headers=headers
    )
    assert own.status_code == 201

    across = await client.post(
        "/api/v1/instruments", json=body(mine.id, "Copy", taken_id), headers=headers
    )
    within = await client.post(
        "/api/v1/instruments", json=body(mine.id, "Copy", own.json()["id"]), headers=headers
    )
    # The same answer as reusing one's own id with other content: no hint of the owner.
    assert across.status_code == within.status_code == 409, (across.text, within.text)
    strip = {"instance", "id"}  # each echoes what was sent
    assert {k: v for k, v in across.json().items() if k not in strip} == {
        k: v for k, v in within.json().items() if k not in strip
    }
