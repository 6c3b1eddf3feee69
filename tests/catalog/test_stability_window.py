"""A test's own stability window in the catalogue: set at creation, changed and cleared by
an edit (audited), bounded, and part of a repeatable create's content."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.kit.ids import new_id
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user

AMMONIA = {
    "code": "NH3",
    "name": "Ammonia",
    "department": "Biochemistry",
    "specimen_type": "plasma",
    "container": "edta_lavender",
    "unit": "umol/L",
    "result_type": "numeric",
    "stability_hours": 2,
}


async def test_stability_hours_is_set_changed_cleared_and_audited(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = bearer_for(await create_user(session, organisation, roles=("admin",)))
    created = await client.post("/api/v1/catalog/tests", json=AMMONIA, headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["stability_hours"] == 2
    test_id = body["id"]

    changed = await client.patch(
        f"/api/v1/catalog/tests/{test_id}",
        json={"version": body["version"], "stability_hours": 1},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["stability_hours"] == 1
    untouched = await client.patch(
        f"/api/v1/catalog/tests/{test_id}",
        json={"version": changed.json()["version"], "name": "Ammonia (plasma)"},
        headers=admin,
    )
    assert untouched.json()["stability_hours"] == 1
    cleared = await client.patch(
        f"/api/v1/catalog/tests/{test_id}",
        json={"version": untouched.json()["version"], "stability_hours": None},
        headers=admin,
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["stability_hours"] is None
    listed = await client.get("/api/v1/catalog/tests", params={"code": "NH3"}, headers=admin)
    assert listed.json()["items"][0]["stability_hours"] is None

    entries = list(
        await session.scalars(
            select(AuditLog).where(AuditLog.entity_id == test_id).order_by(AuditLog.id)
        )
    )
    # The audit keeps what changed: created with 2, then 2 -> 1, then 1 -> cleared.
    moves = [
        (
            (e.changes.get("before") or {}).get("stability_hours"),
            e.changes["after"]["stability_hours"],
        )
        for e in entries
        if "stability_hours" in e.changes.get("after", {})
    ]
    assert moves == [(None, 2), (2, 1), (1, None)]


async def test_stability_hours_out_of_range_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = bearer_for(await create_user(session, organisation, roles=("admin",)))
    for hours in (0, -3, 169, "soon"):
        answer = await client.post(
            "/api/v1/catalog/tests", json={**AMMONIA, "stability_hours": hours}, headers=admin
        )
        assert answer.status_code == 422, (hours, answer.text)
        assert "stability_hours" in answer.text


async def test_a_repeated_create_compares_the_window(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = bearer_for(await create_user(session, organisation, roles=("admin",)))
    body = {**AMMONIA, "id": str(new_id())}
    first = await client.post("/api/v1/catalog/tests", json=body, headers=admin)
    again = await client.post("/api/v1/catalog/tests", json=body, headers=admin)
    other = await client.post(
        "/api/v1/catalog/tests", json={**body, "stability_hours": 3}, headers=admin
    )
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
