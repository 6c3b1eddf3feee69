"""Triggers: a critical value alerts the referring doctor (logged against the alert), a
captured payment confirms in rupees, the appointment reminder entry point schedules the
evening before; redelivered events create nothing twice; other labs see nothing."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.billing.counter import counter_service
from nidaan.config import Settings
from nidaan.kit.jobs import run_pending_jobs
from nidaan.kit.time import IST, utcnow
from nidaan.notifications.enums import Channel
from nidaan.notifications.service import notifications_service
from nidaan.results.models import CriticalAlert
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient, create_reference_range
from tests.fixtures.objects import bearer_for, create_user
from tests.fixtures.results import enter_result, place_order, principal_of
from tests.notifications.conftest import Providers
from tests.notifications.world import make_world, notifications_of

pytestmark = pytest.mark.usefixtures("job_app_open")


async def test_critical_value_alerts_the_doctor_and_is_logged_on_the_alert(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, verify=False)
    async with committing_session() as session:
        admin = principal_of(world.lab.users["admin"])
        await notifications_service.save_doctor(
            session,
            admin,
            name="dr. anil   kulkarni",  # matched to "Dr. Anil Kulkarni" on the patient
            mobile="9822098220",
            email=None,
            channels=["whatsapp"],
        )
        potassium = await create_catalog_test(
            session, world.lab.organisation, code="K", name="Potassium", unit="mmol/L"
        )
        await create_reference_range(
            session, potassium, low="3.5", high="5.1", critical_low="2.5", critical_high="6.5"
        )
        from nidaan.patients.models import Patient

        patient = await session.get(Patient, world.patient_id)
        placed = await place_order(session, world.lab, patient, [potassium])
        await enter_result(session, world.lab, placed["K"], "7.2")
    await run_pending_jobs(settings)
    await run_pending_jobs(settings)  # the redelivery of the same event changes nothing
    rows = await notifications_of(committing_session, world)
    assert [(r.template, r.recipient_type, r.channel) for r in rows] == [
        ("critical_value_alert", "doctor", "whatsapp")
    ]
    assert rows[0].status in ("sent", "delivered", "read")
    [request] = providers.whatsapp_requests("+919822098220")
    values = [p["text"] for p in request["template"]["components"][0]["parameters"]]
    assert values == ["Sunita Sharma", "Potassium", "7.2"]
    async with committing_session() as session:
        alert = await session.scalar(
            select(CriticalAlert).where(CriticalAlert.patient_id == world.patient_id)
        )
        assert alert is not None
        logged = await session.scalar(
            select(AuditLog).where(
                AuditLog.entity_type == "critical_alert",
                AuditLog.entity_id == str(alert.id),
                AuditLog.action == "critical_alert.notification_queued",
            )
        )
    assert logged is not None
    assert rows[0].subject_id == alert.id


async def test_payment_captured_sends_a_confirmation_in_rupees(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, language="hi")
    assert world.order_id is not None
    async with committing_session() as session:
        await counter_service.record_payment(
            session,
            principal_of(world.lab.users["front"]),
            order_id=world.order_id,
            amount="1250.5",
            method="upi",
            reference="UTR123",
        )
    await run_pending_jobs(settings)
    rows = [
        r for r in await notifications_of(committing_session, world) if r.subject_type == "payment"
    ]
    assert len(rows) == 1
    assert rows[0].language == "hi"
    assert json.loads(rows[0].parameters)[:1] == ["₹1,250.50"]
    request = next(
        r
        for r in providers.whatsapp_requests(world.mobile)
        if r["template"]["name"] == "payment_confirmation"
    )
    assert request["template"]["language"]["code"] == "hi"


async def test_appointment_reminder_goes_out_the_evening_before(
    session: AsyncSession, organisation: Organisation
) -> None:
    desk = await create_user(session, organisation, roles=("front_desk",))
    patient = await create_patient(
        session, organisation, mobile="9876501234", preferred_language="hi"
    )
    await notifications_service.set_consent(
        session, principal_of(desk), patient.id, Channel.WHATSAPP, opted_in=True
    )
    starts = datetime.combine(
        (utcnow() + timedelta(days=3)).astimezone(IST).date(), time(7, 30), tzinfo=IST
    )
    appointment = patient.id
    row = await notifications_service.request_appointment_reminder(
        session,
        organisation.id,
        appointment_id=appointment,
        patient_id=patient.id,
        starts_at=starts,
        place="Flat 4B, Sai Residency, Kothrud",
    )
    assert row is not None
    assert row.next_attempt_at == datetime.combine(
        starts.date() - timedelta(days=1), time(18, 0), tzinfo=IST
    )
    assert json.loads(row.parameters)[1:] == ["07:30", "Flat 4B, Sai Residency, Kothrud"]
    again = await notifications_service.request_appointment_reminder(
        session,
        organisation.id,
        appointment_id=appointment,
        patient_id=patient.id,
        starts_at=starts,
        place="Flat 4B, Sai Residency, Kothrud",
    )
    assert again is None  # asked twice, created once
    moved = await notifications_service.request_appointment_reminder(
        session,
        organisation.id,
        appointment_id=appointment,
        patient_id=patient.id,
        starts_at=starts + timedelta(days=1),
        place="Flat 4B",
    )
    assert moved is not None  # rescheduled: a new reminder


async def test_another_labs_messages_are_invisible(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
) -> None:
    from nidaan.notifications.enums import MessageKind, TemplateName
    from nidaan.notifications.service import Draft

    patient = await create_patient(session, organisation, mobile="9876501111")
    recipient = await notifications_service.patient_recipient(session, organisation.id, patient)
    row = await notifications_service.queue(
        session,
        organisation.id,
        recipient,
        Draft(
            template=TemplateName.PAYMENT_CONFIRMATION,
            kind=MessageKind.TEMPLATE,
            parameters=(f"₹{Decimal('10')}.00", "ORD-9", "counter"),
            subject=("payment", patient.id),
            dedupe_base="isolation",
        ),
        about_patient_id=patient.id,
        channels=[Channel.WHATSAPP],
    )
    assert row is not None
    stranger = bearer_for(await create_user(session, other_organisation, roles=("admin",)))
    assert (
        await client.get(f"/api/v1/notifications/{row.id}", headers=stranger)
    ).status_code == 404
    listed = await client.get(
        "/api/v1/notifications", params={"patient": str(patient.id)}, headers=stranger
    )
    assert listed.status_code == 404
    everything = await client.get("/api/v1/notifications", headers=stranger)
    assert everything.json()["items"] == []
    consents = await client.get(
        f"/api/v1/patients/{patient.id}/notification-consents", headers=stranger
    )
    assert consents.status_code == 404
    changed = await client.put(
        f"/api/v1/patients/{patient.id}/notification-consents/whatsapp",
        json={"opted_in": True},
        headers=stranger,
    )
    assert changed.status_code == 404
    ours = bearer_for(await create_user(session, organisation, roles=("front_desk",)))
    mine = await client.get(
        "/api/v1/notifications", params={"patient": str(patient.id)}, headers=ours
    )
    assert [i["id"] for i in mine.json()["items"]] == [str(row.id)]
    assert mine.json()["items"][0]["history"][0]["detail"].startswith("no opted-in channel")
