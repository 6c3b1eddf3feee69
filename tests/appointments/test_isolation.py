"""Another organisation's visits, branches and phlebotomists are 404 and absent from lists;
staff limited to other branches get 403; a refused request changes nothing."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments.models import Slot
from nidaan.appointments.service import appointments_service
from nidaan.tenancy.models import Organisation
from tests.appointments.support import booking, build_home_lab, tomorrow
from tests.fixtures.objects import bearer_for, create_branch, create_user
from tests.fixtures.orders import system_principal


async def test_other_organisations_visits_are_invisible(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
) -> None:
    ours = await build_home_lab(session, organisation)
    theirs = await build_home_lab(session, other_organisation)
    visit, _ = await appointments_service.book(
        session, system_principal(other_organisation), booking(theirs, theirs.slots[0])
    )
    await appointments_service.assign(
        session, system_principal(other_organisation), [(visit.id, theirs.phlebotomists[0].id, 1)]
    )
    headers = bearer_for(ours.admin)
    for method, path, body in (
        ("GET", f"/api/v1/appointments/{visit.id}", None),
        ("POST", f"/api/v1/appointments/{visit.id}/cancel", {"reason": "x"}),
        (
            "POST",
            f"/api/v1/appointments/{visit.id}/reschedule",
            {"slot_id": str(theirs.slots[1].id), "reason": "x"},
        ),
        ("POST", f"/api/v1/appointments/{visit.id}/status", {"to": "on_the_way"}),
        ("POST", f"/api/v1/appointments/{visit.id}/collect", {}),
        ("GET", f"/api/v1/appointments/branches/{theirs.branch.id}/slots", None),
        (
            "PUT",
            f"/api/v1/appointments/branches/{theirs.branch.id}/areas",
            {"pincodes": ["110001"]},
        ),
        ("GET", f"/api/v1/appointments/runs/{theirs.phlebotomists[0].id}", None),
        (
            "POST",
            "/api/v1/appointments/assignments",
            {"assignments": [{"appointment_id": str(visit.id), "phlebotomist_id": None}]},
        ),
    ):
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 404, (path, response.text)
    # Their slot cannot be booked with our patient either.
    stolen = await client.post(
        "/api/v1/appointments",
        json={
            "slot_id": str(theirs.slots[0].id),
            "patient_id": str(ours.patient.id),
            "items": ["CBC"],
            "address": "7 MG Road",
            "pincode": "560001",
        },
        headers=headers,
    )
    assert stolen.status_code == 404
    listed = (
        await client.get(
            "/api/v1/appointments", params={"day": tomorrow().isoformat()}, headers=headers
        )
    ).json()
    assert listed["items"] == []
    await session.refresh(visit)
    assert (visit.status, visit.phlebotomist_id) == ("assigned", theirs.phlebotomists[0].id)
    slot = await session.get(Slot, theirs.slots[0].id)
    assert slot is not None
    assert slot.booked == 1


async def test_staff_of_another_branch_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation)
    elsewhere = await create_branch(session, organisation)
    desk = await create_user(session, organisation, roles=("front_desk",), branches=[elsewhere])
    answer = await client.post(
        "/api/v1/appointments",
        json={
            "slot_id": str(lab.slots[0].id),
            "patient_id": str(lab.patient.id),
            "items": ["CBC"],
            "address": "7 MG Road",
            "pincode": "560001",
        },
        headers=bearer_for(desk),
    )
    assert answer.status_code == 403
    assert answer.json()["code"] == "branch_not_allowed"
    assert await session.get(Slot, lab.slots[0].id) is not None
    assert (await session.get(Slot, lab.slots[0].id)).booked == 0  # type: ignore[union-attr]
