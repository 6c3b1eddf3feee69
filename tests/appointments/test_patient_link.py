"""The patient booking link: no login, a one-time code to the mobile through the lab's
notification channels, a short-lived booking token, booking for the number's patients (or
a new one), rescheduling through the link; wrong codes, lost tokens and floods refused."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments.models import Appointment
from nidaan.notifications.models import Notification, NotificationConsent
from nidaan.tenancy.models import Organisation
from tests.appointments.support import PINCODES, build_home_lab
from tests.fixtures.objects import create_organisation


def link(organisation: Organisation, lab) -> str:  # type: ignore[no-untyped-def]
    return f"/api/v1/public/book/{organisation.slug}/{lab.branch.code}"


async def sent_code(session: AsyncSession) -> str:
    row = await session.scalar(
        select(Notification)
        .where(Notification.template == "booking_otp")
        .order_by(Notification.created_at.desc())
        .limit(1)
    )
    assert row is not None
    assert row.channel == "sms"
    return json.loads(row.parameters)[0]


def visit(lab, slot, **extra):  # type: ignore[no-untyped-def]
    return {
        "mobile": "98765 43210",
        "slot_id": str(slot.id),
        "items": ["GLU-F"],
        "address": "Flat 4B, Lake View Apartments",
        "landmark": "Behind the bus depot",
        "pincode": PINCODES[1],
        **extra,
    }


async def test_patient_books_with_a_code_sent_to_the_mobile(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation, people=False)
    base = link(organisation, lab)
    slots = (await client.get(base + "/slots")).json()["items"]
    assert [s["available"] for s in slots] == [4, 4, 4]
    tests = (await client.get(base + "/tests")).json()["items"]
    # Every bookable test, the fasting one with its instructions.
    assert [(t["code"], t["fasting_hours"]) for t in tests] == [
        ("CBC", 0),
        ("GLU-F", 10),
        ("LFT", 0),
    ]
    assert tests[1] == {
        "kind": "test",
        "code": "GLU-F",
        "name": "Glucose, fasting",
        "department": "Biochemistry",
        "fasting_hours": 10,
        "instructions": "Nothing to eat after 10 pm; water is fine.",
    }

    sent = await client.post(base + "/code", json={"mobile": "98765 43210", "language": "hi"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["mobile"] == "+91******3210"
    code = await sent_code(session)
    assert len(code) == 6

    wrong = await client.post(
        base + "/verify", json={"mobile": "9876543210", "code": f"{(int(code) + 1) % 10**6:06d}"}
    )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "otp_invalid"
    verified = await client.post(base + "/verify", json={"mobile": "9876543210", "code": code})
    assert verified.status_code == 200, verified.text
    token = verified.json()["token"]
    assert [p["id"] for p in verified.json()["patients"]] == [str(lab.patient.id)]

    no_token = await client.post(
        base + "/appointments", json=visit(lab, lab.slots[0], patient_id=str(lab.patient.id))
    )
    assert no_token.status_code == 403
    assert no_token.json()["code"] == "booking_token_invalid"
    other_number = await client.post(
        base + "/appointments",
        json=visit(lab, lab.slots[0], patient_id=str(lab.patient.id), mobile="9123456780"),
        headers={"X-Booking-Token": token},
    )
    assert other_number.status_code == 403

    booked = await client.post(
        base + "/appointments",
        json=visit(lab, lab.slots[0], patient_id=str(lab.patient.id)),
        headers={"X-Booking-Token": token},
    )
    assert booked.status_code == 201, booked.text
    assert booked.json()["fasting_hours"] == 10
    row = await session.get(Appointment, booked.json()["id"])
    assert row is not None
    assert (row.booked_via, row.landmark) == ("patient_link", "Behind the bus depot")
    consents = {
        c.channel: c.opted_in
        for c in await session.scalars(
            select(NotificationConsent).where(NotificationConsent.patient_id == lab.patient.id)
        )
    }
    assert consents == {"sms": True, "whatsapp": True}

    # A family member on the same number: registered with the verified mobile.
    family = await client.post(
        base + "/appointments",
        json=visit(
            lab,
            lab.slots[0],
            new_patient={"full_name": "Kamala Rao", "sex": "female", "age_years": 67},
            reminders=False,
        ),
        headers={"X-Booking-Token": token},
    )
    assert family.status_code == 201, family.text
    mine = (await client.get(base + "/appointments", headers={"X-Booking-Token": token})).json()[
        "items"
    ]
    assert len(mine) == 2

    # The reschedule link of the reminders.
    moved = await client.post(
        base + f"/appointments/{booked.json()['id']}/reschedule",
        json={"slot_id": str(lab.slots[2].id), "reason": "Office call at 7"},
        headers={"X-Booking-Token": token},
    )
    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["starts_at"]) == lab.slots[2].starts_at
    cancelled = await client.post(
        base + f"/appointments/{family.json()['id']}/cancel",
        json={"reason": "Not needed"},
        headers={"X-Booking-Token": token},
    )
    assert cancelled.json()["status"] == "cancelled"


async def test_wrong_codes_burn_the_code_and_floods_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation, people=False)
    base = link(organisation, lab)
    await client.post(base + "/code", json={"mobile": "9876543210"})
    code = await sent_code(session)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        answer = await client.post(base + "/verify", json={"mobile": "9876543210", "code": wrong})
        assert answer.status_code == 400
    burnt = await client.post(base + "/verify", json={"mobile": "9876543210", "code": code})
    assert burnt.status_code == 400
    for _ in range(2):
        assert (await client.post(base + "/code", json={"mobile": "9876543210"})).status_code == 200
    flood = await client.post(base + "/code", json={"mobile": "9876543210"})
    assert flood.status_code == 429
    assert flood.json()["code"] == "otp_rate_limited"
    bad = await client.post(base + "/code", json={"mobile": "12345"})
    assert bad.status_code == 422


async def test_the_link_reaches_only_its_own_lab(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation, people=False)
    other = await create_organisation(session)
    theirs = await build_home_lab(session, other, people=False)
    assert (
        await client.get(f"/api/v1/public/book/{organisation.slug}/NOPE/slots")
    ).status_code == 404
    base = link(organisation, lab)
    await client.post(base + "/code", json={"mobile": "9876543210"})
    code = await sent_code(session)
    verified = (
        await client.post(base + "/verify", json={"mobile": "9876543210", "code": code})
    ).json()
    token = verified["token"]
    # Their patient with the same mobile number is not offered on our link.
    assert theirs.patient.mobile == lab.patient.mobile
    assert [p["id"] for p in verified["patients"]] == [str(lab.patient.id)]
    # Their slot through our link, our token on their link: neither works.
    foreign_slot = await client.post(
        base + "/appointments",
        json=visit(lab, theirs.slots[0], patient_id=str(lab.patient.id)),
        headers={"X-Booking-Token": token},
    )
    assert foreign_slot.status_code == 404
    foreign_link = await client.get(
        link(other, theirs) + "/appointments", headers={"X-Booking-Token": token}
    )
    assert foreign_link.status_code == 403


async def test_slots_for_a_pincode_only_where_the_branch_collects(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation, people=False)
    base = link(organisation, lab)
    everywhere = (await client.get(base + "/slots")).json()["items"]
    for pincode in PINCODES:
        served = await client.get(base + "/slots", params={"pincode": pincode})
        assert served.status_code == 200
        assert served.json()["items"] == everywhere
    outside = await client.get(base + "/slots", params={"pincode": "110001"})
    assert outside.status_code == 422
    assert outside.json()["code"] == "pincode_not_served"
    malformed = await client.get(base + "/slots", params={"pincode": "12ab"})
    assert malformed.status_code == 422
