"""Resend a report by channel (the desk's "resend report" button): only on a channel the
patient opted in to, one waiting resend per channel, audited, tenant- and role-checked."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from nidaan.audit.models import AuditLog
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.config import Settings
from nidaan.kit.jobs import run_pending_jobs
from nidaan.notifications.enums import Channel
from nidaan.reports.models import Report
from nidaan.reports.release import report_release
from tests.fixtures.objects import bearer_for, create_organisation, create_user
from tests.notifications.conftest import Providers
from tests.notifications.world import World, make_world, notifications_of, wait_for

pytestmark = pytest.mark.usefixtures("job_app_open")


async def report_of(committing_session: Any, world: World) -> Report:
    async with committing_session() as session:
        report = await session.scalar(
            select(Report).where(Report.order_id == world.order_id, Report.is_current.is_(True))
        )
        assert report is not None
        return report


async def resends_of(committing_session: Any, world: World) -> int:
    """Messages made by a resend (fallbacks of the first sending may arrive meanwhile)."""
    return sum(
        ":resend:" in r.dedupe_key for r in await notifications_of(committing_session, world)
    )


async def resend(
    providers: Providers, world: World, report: Report, channel: str, who: str = "front"
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=providers.app_url) as client:
        return await client.post(
            f"/api/v1/reports/{report.id}/notifications",
            json={"channel": channel},
            headers=world.headers(who),
        )


async def test_resend_goes_out_once_per_click_on_an_agreed_channel(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, consents=(Channel.WHATSAPP,))
    await run_pending_jobs(settings)
    report = await report_of(committing_session, world)
    refused = await resend(providers, world, report, "sms")
    assert refused.status_code == 409
    assert refused.json()["code"] == "resend_not_allowed"
    assert "not agreed" in refused.json()["detail"]
    assert await resends_of(committing_session, world) == 0

    first = await resend(providers, world, report, "whatsapp")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["channel"] == "whatsapp"
    assert body["template"] == "test_result_ready"
    assert body["subject_id"] == str(report.id)
    assert body["status"] == "pending"
    assert body["to"].startswith("+91")
    assert "•" in body["to"]
    assert [h["status"] for h in body["history"]] == ["pending"]
    # A second click while the first is still waiting does not send twice.
    again = await resend(providers, world, report, "whatsapp")
    assert again.status_code == 409
    assert again.json()["code"] == "resend_already_queued"

    await run_pending_jobs(settings)

    async def delivered() -> Any:
        rows = await notifications_of(committing_session, world)
        row = next(r for r in rows if str(r.id) == body["id"])
        return row if row.status in ("delivered", "read") else None

    row = await wait_for(delivered)
    assert row is not None
    assert row.provider_message_id.startswith("wamid.")
    templates = [r for r in providers.whatsapp_requests(world.mobile) if r["type"] == "template"]
    assert len(templates) == 2  # the original and the one resend
    # Once sent, the desk may resend again.
    assert (await resend(providers, world, report, "whatsapp")).status_code == 201
    async with committing_session() as session:
        audited = list(
            await session.scalars(
                select(AuditLog).where(
                    AuditLog.action == "notification.resent",
                    AuditLog.entity_id == str(report.id),
                )
            )
        )
    assert len(audited) == 2


async def test_resend_follows_consent_for_every_combination(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    """Every subset of opted-in channels against every channel: allowed exactly on the
    agreed ones; a refusal creates nothing."""
    world = await make_world(committing_session, consents=())
    await run_pending_jobs(settings)
    report = await report_of(committing_session, world)
    channels = [c.value for c in Channel]
    async with httpx.AsyncClient(base_url=providers.app_url) as client:
        for size in range(len(channels) + 1):
            for agreed in itertools.combinations(channels, size):
                for channel in channels:
                    answer = await client.put(
                        f"/api/v1/patients/{world.patient_id}/notification-consents/{channel}",
                        json={"opted_in": channel in agreed},
                        headers=world.headers("front"),
                    )
                    assert answer.status_code == 200, answer.text
                for channel in channels:
                    count = await resends_of(committing_session, world)
                    answer = await resend(providers, world, report, channel)
                    allowed = channel in agreed
                    if allowed and answer.status_code == 409:
                        # Allowed, but the previous combination's resend is still waiting.
                        assert answer.json()["code"] == "resend_already_queued"
                        continue
                    assert answer.status_code == (201 if allowed else 409), (agreed, channel)
                    created = await resends_of(committing_session, world) - count
                    assert created == (1 if allowed else 0)


async def test_resend_is_refused_to_other_labs_and_roles(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, consents=(Channel.WHATSAPP,))
    await run_pending_jobs(settings)
    report = await report_of(committing_session, world)
    assert (await resend(providers, world, report, "whatsapp", who="tech")).status_code == 403
    async with committing_session() as session:
        other = await create_organisation(session)
        stranger = await create_user(session, other, roles=("admin",))
        headers = bearer_for(stranger)
    async with httpx.AsyncClient(base_url=providers.app_url) as client:
        answer = await client.post(
            f"/api/v1/reports/{report.id}/notifications",
            json={"channel": "whatsapp"},
            headers=headers,
        )
        assert answer.status_code == 404
        bad = await client.post(
            f"/api/v1/reports/{report.id}/notifications",
            json={"channel": "pigeon"},
            headers=world.headers("front"),
        )
        assert bad.status_code == 422
    assert await resends_of(committing_session, world) == 0


async def test_a_held_report_is_not_resent_until_the_hold_is_lifted(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    """A release hold (an unpaid invoice) keeps the report from the patient; a resend from
    the desk must not go round it."""
    world = await make_world(committing_session, consents=(Channel.WHATSAPP,))
    await run_pending_jobs(settings)
    report = await report_of(committing_session, world)
    async with committing_session() as session:
        await report_release.hold(
            session,
            world.organisation_id,
            report.order_id,
            holder="billing",
            reason="unpaid invoice",
            actor=SYSTEM_ACTOR,
        )
    held = await resend(providers, world, report, "whatsapp")
    assert held.status_code == 409
    assert held.json()["code"] == "resend_not_allowed"
    assert "unpaid invoice" in held.json()["detail"]
    assert await resends_of(committing_session, world) == 0
    async with committing_session() as session:
        await report_release.lift(
            session, world.organisation_id, report.order_id, holder="billing", actor=SYSTEM_ACTOR
        )
    assert (await resend(providers, world, report, "whatsapp")).status_code == 201
    assert await resends_of(committing_session, world) == 1
