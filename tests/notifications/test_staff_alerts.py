"""Administrators hear of lock-outs, breaches and overdue DPDP requests by e-mail (through
the real SMTP adapter to the simulator), after the event's delivery job runs; and a
withdrawal on the patient's privacy link stops a message already queued."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from nidaan.compliance.enums import ConsentSource, Purpose, RequestKind
from nidaan.compliance.service import compliance_service
from nidaan.config import Settings
from nidaan.kit.jobs import run_pending_jobs
from nidaan.kit.time import utcnow
from nidaan.notifications import dispatch
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import create_organisation, create_user
from tests.fixtures.results import principal_of
from tests.notifications.conftest import Providers
from tests.notifications.test_dispatch import load, queue_payment_message, sent_to
from tests.notifications.world import make_world

pytestmark = pytest.mark.usefixtures("job_app_open")


async def test_a_lockout_is_mailed_to_every_active_admin(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        admins = [await create_user(session, organisation, roles=("admin",)) for _ in range(2)]
        retired = await create_user(session, organisation, roles=("admin",))
        retired.is_active = False
        victim = await create_user(session, organisation, roles=("front_desk",))
    async with httpx.AsyncClient(base_url=providers.app_url) as client:
        for _ in range(settings.login_max_failures + 1):
            await client.post(
                "/api/v1/auth/token", data={"username": victim.email, "password": "wrong-guess"}
            )
    await run_pending_jobs(settings)
    mails = [m for m in providers.smtp.sink.messages if "locked out" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in mails) == sorted(a.email for a in admins)
    body = mails[0].get_content()
    assert str(victim.id) in body
    assert "wrong-guess" not in body


async def test_a_breach_and_an_escalated_request_are_mailed_to_admins(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        admin = await create_user(session, organisation, roles=("admin",))
        patient = await create_patient(session, organisation)
        now = utcnow()
        await compliance_service.create_breach(
            session,
            principal_of(admin),
            title="Backup disk lost",
            description="x",
            data_classes=["contact"],
            occurred_from=now,
            occurred_to=now,
            aware_at=now,
        )
        request = await compliance_service.create_request(
            session,
            patient,
            RequestKind.GRIEVANCE,
            description="no answer",
            changes=None,
            source=ConsentSource.DESK,
            caller=None,
        )
    async with committing_session() as session:
        escalated = await compliance_service.escalate_overdue(
            session, now=request.received_at + timedelta(days=61)
        )
        assert escalated >= 1
    await run_pending_jobs(settings)
    subjects = [str(m["Subject"]) for m in providers.smtp.sink.messages if m["To"] == admin.email]
    assert any("Backup disk lost" in s for s in subjects)
    assert any("grievance request is due" in s for s in subjects)


async def test_withdrawing_on_the_patients_link_stops_a_queued_message(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, verify=False)
    notification = await queue_payment_message(committing_session, world)
    async with committing_session() as session:
        patient = await compliance_service.patient_by_link(
            session,
            (
                await compliance_service.create_link(
                    session,
                    principal_of(world.lab.users["front"]),
                    await _patient(session, world),
                )
            )[0],
        )
        await compliance_service.set_consent(
            session,
            patient,
            Purpose.REPORTS_WHATSAPP,
            granted=False,
            source=ConsentSource.PATIENT_LINK,
            caller=None,
        )
    assert await dispatch.send(notification, settings) is None
    row, events = await load(committing_session, notification)
    assert row.status == "skipped"
    assert "opted out" in (events[-1].detail or "")
    assert sent_to(providers, notification) == 0


async def _patient(session: Any, world: Any) -> Any:
    from nidaan.patients.service import patients_service

    return await patients_service.get_in(session, world.organisation_id, world.patient_id)
