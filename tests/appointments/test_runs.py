"""Runs: a suggested assignment by area and window that a person confirms, the run sheet in
visit order with the tubes to carry, visit steps with their times, the "on the way" notice,
collection at the door over REST, and the no-show / late counts of the dashboard."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments.service import appointments_service
from nidaan.billing.models import CounterPayment, Invoice, InvoiceLine
from nidaan.notifications.enums import Channel
from nidaan.notifications.models import Notification
from nidaan.notifications.service import notifications_service
from nidaan.samples.models import Sample
from nidaan.tenancy.models import Organisation
from tests.appointments.support import PINCODES, booking, build_home_lab, tomorrow
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import bearer_for
from tests.fixtures.orders import system_principal


async def test_suggested_runs_group_by_area_and_respect_window_load(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation, phlebotomists=2, visits_each=2)
    caller = system_principal(organisation)
    patients = [lab.patient] + [await create_patient(session, organisation) for _ in range(4)]
    # Window 1: three visits in 560001, one in 560034; window 2: one in 560034.
    plan = [(0, 0), (0, 0), (0, 0), (0, 1), (1, 1)]
    visits = []
    for patient, (window, area) in zip(patients, plan, strict=True):
        row, _ = await appointments_service.book(
            session, caller, booking(lab, lab.slots[window], patient.id, pincode=PINCODES[area])
        )
        visits.append(row)
    headers = bearer_for(lab.desk)
    answer = (
        await client.get(
            f"/api/v1/appointments/branches/{lab.branch.id}/suggestions",
            params={"day": tomorrow().isoformat()},
            headers=headers,
        )
    ).json()
    who = {s["appointment_id"]: s["phlebotomist_id"] for s in answer["suggestions"]}
    assert len(answer["phlebotomists"]) == 2
    assert None not in who.values()
    first_window = [who[str(v.id)] for v in visits[:4]]
    # Nobody gets more than two visits in one window.
    assert max(first_window.count(p) for p in set(first_window)) == 2
    # Nothing is saved until confirmed.
    assert {
        v["status"]
        for v in (
            await client.get(
                "/api/v1/appointments", params={"day": tomorrow().isoformat()}, headers=headers
            )
        ).json()["items"]
    } == {"booked"}

    confirmed = await client.post(
        "/api/v1/appointments/assignments",
        json={
            "assignments": [
                {"appointment_id": a, "phlebotomist_id": p, "run_position": n}
                for n, (a, p) in enumerate(sorted(who.items()), start=1)
            ]
        },
        headers=headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    assert {v["status"] for v in confirmed.json()["appointments"]} == {"assigned"}
    rider = answer["phlebotomists"][0]["id"]
    sheet = (
        await client.get(
            f"/api/v1/appointments/runs/{rider}",
            params={"day": tomorrow().isoformat()},
            headers=bearer_for(lab.phlebotomists[0]),
        )
    ).json()
    starts = [v["starts_at"] for v in sheet["visits"]]
    assert starts == sorted(starts)
    assert all(v["phlebotomist_id"] == rider for v in sheet["visits"])
    # Each visit needs a grey and a purple tube: the run carries one of each per visit.
    assert {(t["container"], t["count"]) for t in sheet["tubes_total"]} == {
        ("fluoride_grey", len(sheet["visits"])),
        ("edta_purple", len(sheet["visits"])),
    }


async def test_door_steps_record_times_tell_the_patient_and_collect(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation)
    caller = system_principal(organisation)
    await notifications_service.set_consent(
        session, caller, lab.patient.id, Channel.WHATSAPP, opted_in=True
    )
    row, _ = await appointments_service.book(session, caller, booking(lab, lab.slots[0]))
    rider = lab.phlebotomists[0]
    await appointments_service.assign(session, caller, [(row.id, rider.id, 1)])
    headers = bearer_for(rider)

    # Not straight to "arrived" from "assigned".
    skip = await client.post(
        f"/api/v1/appointments/{row.id}/status", json={"to": "arrived"}, headers=headers
    )
    assert skip.status_code == 409
    assert skip.json()["code"] == "illegal_visit_transition"
    on_way = await client.post(
        f"/api/v1/appointments/{row.id}/status", json={"to": "on_the_way"}, headers=headers
    )
    assert on_way.status_code == 200, on_way.text
    notice = await session.scalar(
        select(Notification).where(
            Notification.subject_id == row.id, Notification.template == "phlebotomist_on_the_way"
        )
    )
    assert notice is not None
    assert rider.full_name in notice.parameters
    assert f"?appointment={row.id}" in notice.parameters
    # The same step again is not a second notice.
    await client.post(
        f"/api/v1/appointments/{row.id}/status", json={"to": "on_the_way"}, headers=headers
    )
    assert (
        await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.subject_id == row.id,
                Notification.template == "phlebotomist_on_the_way",
            )
        )
    ) == 1
    arrived = await client.post(
        f"/api/v1/appointments/{row.id}/status", json={"to": "arrived"}, headers=headers
    )
    assert set(arrived.json()["status_times"]) == {"booked", "assigned", "on_the_way", "arrived"}

    collected = await client.post(
        f"/api/v1/appointments/{row.id}/collect",
        json={"payment": {"amount": "300.00", "method": "cash"}},
        headers=headers,
    )
    assert collected.status_code == 200, collected.text
    out = collected.json()
    assert out["appointment"]["status"] == "collected"
    assert len(out["accessions"]) == 2  # a grey and a purple tube
    samples = list(await session.scalars(select(Sample).where(Sample.order_id == out["order_id"])))
    assert {(s.container, s.status) for s in samples} == {
        ("fluoride_grey", "collected"),
        ("edta_purple", "collected"),
    }
    payment = await session.get(CounterPayment, out["payment_id"])
    assert payment is not None
    assert payment.review_reason is None, payment.review_reason
    # GLU-F 100 + CBC 100 + the home-collection charge 100 (the tests are below 2000).
    invoice = await session.get(Invoice, payment.invoice_id)
    assert invoice is not None
    lines = list(
        await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))
    )
    assert sorted((line.kind, line.unit_price) for line in lines)[0] == (
        "home_collection",
        Decimal("100.00"),
    )
    assert invoice.grand_total == Decimal("300.00")
    assert (payment.amount, payment.method, payment.status) == (
        Decimal("300.00"),
        "cash",
        "applied",
    )
    # Collecting again is a replay: same order, no second payment.
    again = await client.post(
        f"/api/v1/appointments/{row.id}/collect",
        json={"order_id": out["order_id"]},
        headers=headers,
    )
    assert again.json()["order_id"] == out["order_id"]
    assert (
        await session.scalar(
            select(func.count())
            .select_from(CounterPayment)
            .where(CounterPayment.order_id == out["order_id"])
        )
    ) == 1


async def test_dashboard_counts_no_shows_and_late_arrivals(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation, day=tomorrow() - timedelta(days=2))
    caller = system_principal(organisation)
    # Visits in the past are recorded as they happened (booking them needs a future window).
    from nidaan.appointments.models import Appointment

    rider = lab.phlebotomists[0]
    second = await create_patient(session, organisation)
    for patient, pincode, status, arrived_late in (
        (lab.patient, PINCODES[0], "collected", True),
        (second, PINCODES[1], "not_available", False),
    ):
        slot = lab.slots[0]
        times = {"booked": slot.starts_at.isoformat()}
        if status == "collected":
            times["arrived"] = (
                slot.ends_at + timedelta(minutes=20) if arrived_late else slot.starts_at
            ).isoformat()
        session.add(
            Appointment(
                organisation_id=organisation.id,
                branch_id=lab.branch.id,
                slot_id=slot.id,
                day=slot.day,
                patient_id=patient.id,
                status=status,
                items=["CBC"],
                address="12, 3rd Cross",
                pincode=pincode,
                booked_via="desk",
                phlebotomist_id=rider.id,
                status_times=times,
            )
        )
    await session.flush()
    answer = await client.get(
        "/api/v1/appointments/dashboard",
        params={"first_day": (tomorrow() - timedelta(days=3)).isoformat()},
        headers=bearer_for(lab.admin),
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["by_phlebotomist"] == [
        {"key": rider.full_name, "visits": 2, "not_available": 1, "late_arrivals": 1}
    ]
    assert data["by_pincode"] == [
        {"key": PINCODES[0], "visits": 1, "not_available": 0, "late_arrivals": 1},
        {"key": PINCODES[1], "visits": 1, "not_available": 1, "late_arrivals": 0},
    ]
    assert caller
