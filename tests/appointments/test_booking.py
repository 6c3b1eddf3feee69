"""Booking by the front desk over REST: what a visit needs, the refusals (full, closed,
double booking, area not served, unknown tests), reschedule and cancel with reasons, and the
reminders that follow the visit's time."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments.models import Slot
from nidaan.notifications.enums import Channel
from nidaan.notifications.models import Notification
from nidaan.notifications.service import notifications_service
from nidaan.tenancy.models import Organisation
from tests.appointments.support import PINCODES, build_home_lab, tomorrow
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import bearer_for
from tests.fixtures.orders import system_principal


def body(lab, slot, patient=None, **extra):  # type: ignore[no-untyped-def]
    data = {
        "slot_id": str(slot.id),
        "patient_id": str((patient or lab.patient).id),
        "items": ["GLU-F", "CBC"],
        "address": "12, 3rd Cross, Indiranagar",
        "landmark": "Opposite the temple",
        "pincode": PINCODES[0],
        "latitude": "12.971599",
        "longitude": "77.594566",
    }
    data.update(extra)
    return data


async def slot_row(session: AsyncSession, slot_id) -> Slot:  # type: ignore[no-untyped-def]
    return await session.scalar(
        select(Slot).where(Slot.id == slot_id).execution_options(populate_existing=True)
    )


async def test_front_desk_books_a_visit_with_tubes_and_fasting(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation)
    slot = lab.slots[0]
    response = await client.post(
        "/api/v1/appointments", json=body(lab, slot), headers=bearer_for(lab.desk)
    )
    assert response.status_code == 201, response.text
    visit = response.json()
    assert visit["status"] == "booked"
    assert visit["day"] == tomorrow().isoformat()
    assert visit["booked_via"] == "desk"
    assert visit["mobile"] == "+91******3210"
    assert visit["landmark"] == "Opposite the temple"
    assert visit["latitude"] == "12.971599"
    # One tube per specimen and container, as the order will make them.
    assert {(t["container"], tuple(t["tests"])) for t in visit["tubes"]} == {
        ("fluoride_grey", ("GLU-F",)),
        ("edta_purple", ("CBC",)),
    }
    assert visit["fasting_hours"] == 10
    assert visit["preparation"][0]["instructions"].startswith("Nothing to eat")
    assert (await slot_row(session, slot.id)).booked == 1
    slots = (
        await client.get(
            f"/api/v1/appointments/branches/{lab.branch.id}/slots",
            params={"first_day": tomorrow().isoformat()},
            headers=bearer_for(lab.desk),
        )
    ).json()["items"]
    assert [(s["capacity"], s["booked"], s["available"]) for s in slots] == [
        (4, 1, 3),
        (4, 0, 4),
        (4, 0, 4),
    ]


async def test_refusals_change_nothing(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation, phlebotomists=1, visits_each=1)
    headers = bearer_for(lab.desk)
    slot, other = lab.slots[0], lab.slots[1]
    assert (
        await client.post("/api/v1/appointments", json=body(lab, slot), headers=headers)
    ).status_code == 201

    # The same patient again that day, even in another window: already_booked.
    again = await client.post("/api/v1/appointments", json=body(lab, other), headers=headers)
    assert again.status_code == 409
    assert again.json()["code"] == "already_booked"
    # Another patient in the full window: slot_full.
    second = await create_patient(session, organisation)
    full = await client.post("/api/v1/appointments", json=body(lab, slot, second), headers=headers)
    assert full.status_code == 409
    assert full.json()["code"] == "slot_full"
    # A pincode the branch does not serve; unknown tests.
    far = await client.post(
        "/api/v1/appointments", json=body(lab, other, second, pincode="110001"), headers=headers
    )
    assert far.status_code == 422
    assert far.json()["code"] == "pincode_not_served"
    unknown = await client.post(
        "/api/v1/appointments", json=body(lab, other, second, items=["NOPE"]), headers=headers
    )
    assert unknown.status_code == 422
    # Nothing was taken by the refused requests.
    assert [(await slot_row(session, s.id)).booked for s in lab.slots] == [1, 0, 0]
    listed = (
        await client.get(
            "/api/v1/appointments", params={"day": tomorrow().isoformat()}, headers=headers
        )
    ).json()["items"]
    assert [v["patient_id"] for v in listed] == [str(lab.patient.id)]


async def test_blackout_closes_the_day_and_reports_visits_to_move(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation)
    headers = bearer_for(lab.desk)
    await client.post("/api/v1/appointments", json=body(lab, lab.slots[0]), headers=headers)
    answer = await client.post(
        f"/api/v1/appointments/branches/{lab.branch.id}/blackouts",
        json={"day": tomorrow().isoformat(), "reason": "Bharat bandh"},
        headers=bearer_for(lab.admin),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["visits_to_move"] == 1
    second = await create_patient(session, organisation)
    closed = await client.post(
        "/api/v1/appointments", json=body(lab, lab.slots[1], second), headers=headers
    )
    assert closed.status_code == 409
    assert closed.json()["code"] == "slot_closed"
    # Opening windows again over a blackout day skips it.
    reopened = await client.post(
        f"/api/v1/appointments/branches/{lab.branch.id}/slots",
        json={
            "first_day": tomorrow().isoformat(),
            "last_day": (tomorrow() + timedelta(days=1)).isoformat(),
            "windows": [{"start": "07:00", "end": "08:00"}],
            "phlebotomists": 1,
            "visits_per_phlebotomist": 3,
        },
        headers=bearer_for(lab.admin),
    )
    assert reopened.json() == {
        "created": 1,
        "updated": 0,
        "skipped_blackout_days": [tomorrow().isoformat()],
    }


async def test_capacity_cannot_shrink_below_bookings(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation, phlebotomists=1, visits_each=2)
    headers = bearer_for(lab.desk)
    second = await create_patient(session, organisation)
    for patient in (lab.patient, second):
        assert (
            await client.post(
                "/api/v1/appointments", json=body(lab, lab.slots[0], patient), headers=headers
            )
        ).status_code == 201
    shrink = await client.post(
        f"/api/v1/appointments/branches/{lab.branch.id}/slots",
        json={
            "first_day": tomorrow().isoformat(),
            "last_day": tomorrow().isoformat(),
            "windows": [{"start": "07:00", "end": "08:00"}],
            "phlebotomists": 1,
            "visits_per_phlebotomist": 1,
        },
        headers=bearer_for(lab.admin),
    )
    assert shrink.status_code == 409
    assert shrink.json()["code"] == "capacity_below_bookings"
    assert (await slot_row(session, lab.slots[0].id)).capacity == 2


async def test_reschedule_and_cancel_with_reasons_move_places_and_reminders(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation)
    caller = system_principal(organisation)
    await notifications_service.set_consent(
        session, caller, lab.patient.id, Channel.WHATSAPP, opted_in=True
    )
    headers = bearer_for(lab.desk)
    visit = (
        await client.post("/api/v1/appointments", json=body(lab, lab.slots[0]), headers=headers)
    ).json()

    async def reminders() -> list[Notification]:
        return list(
            await session.scalars(
                select(Notification)
                .where(Notification.subject_id == visit["id"])
                .order_by(Notification.created_at)
                .execution_options(populate_existing=True)
            )
        )

    first = await reminders()
    assert sorted(n.status for n in first) == ["pending", "pending"]
    assert {n.template for n in first} == {"appointment_reminder"}

    stale = await client.post(
        f"/api/v1/appointments/{visit['id']}/reschedule",
        json={"slot_id": str(lab.slots[2].id), "reason": "x", "version": visit["version"] + 5},
        headers=headers,
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    moved = await client.post(
        f"/api/v1/appointments/{visit['id']}/reschedule",
        json={
            "slot_id": str(lab.slots[2].id),
            "reason": "Patient asked for later",
            "version": visit["version"],
        },
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["slot_id"] == str(lab.slots[2].id)
    assert moved.json()["reschedule_count"] == 1
    assert moved.json()["status_reason"] == "Patient asked for later"
    assert [(await slot_row(session, s.id)).booked for s in lab.slots] == [0, 0, 1]
    after_move = await reminders()
    assert sorted(n.status for n in after_move) == ["pending", "pending", "skipped", "skipped"]

    cancelled = await client.post(
        f"/api/v1/appointments/{visit['id']}/cancel",
        json={"reason": "Going out of town"},
        headers=headers,
    )
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["status_reason"] == "Going out of town"
    assert [(await slot_row(session, s.id)).booked for s in lab.slots] == [0, 0, 0]
    assert {n.status for n in await reminders()} == {"skipped"}
    # The place is free again: the same patient may book that day once more.
    again = await client.post("/api/v1/appointments", json=body(lab, lab.slots[0]), headers=headers)
    assert again.status_code == 201


async def test_reminders_go_the_evening_before_and_the_morning_of(
    session: AsyncSession, organisation: Organisation
) -> None:
    from nidaan.appointments.service import appointments_service
    from nidaan.kit.time import IST, utcnow
    from tests.appointments.support import booking

    lab = await build_home_lab(session, organisation, people=False)
    caller = system_principal(organisation)
    await notifications_service.set_consent(
        session, caller, lab.patient.id, Channel.SMS, opted_in=True
    )
    row, _ = await appointments_service.book(session, caller, booking(lab, lab.slots[1]))
    notes = list(
        await session.scalars(select(Notification).where(Notification.subject_id == row.id))
    )
    evening, morning = sorted(n.next_attempt_at.astimezone(IST) for n in notes)
    day = tomorrow()
    six_pm = datetime.combine(day - timedelta(days=1), time(18, 0), tzinfo=IST)
    if utcnow() < six_pm:
        assert evening == six_pm
    else:  # booked after 18:00 the evening before: the reminder goes at once
        assert abs(evening - utcnow()) < timedelta(minutes=1)
    # 90 minutes before the 08:00 window
    assert morning == datetime.combine(day, time(6, 30), tzinfo=IST)
    assert {n.channel for n in notes} == {"sms"}
