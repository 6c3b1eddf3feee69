"""Sending: retries with backoff, ambiguous failures never re-sent, one send under
concurrency, pacing per recipient, opt-out honoured late, WhatsApp -> SMS fallback (DLT)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from nidaan.config import Settings
from nidaan.kit.time import utcnow
from nidaan.notifications import dispatch
from nidaan.notifications.channels.registry import set_channel
from nidaan.notifications.channels.whatsapp import WhatsAppCloudChannel
from nidaan.notifications.enums import Channel, MessageKind, TemplateName
from nidaan.notifications.models import Notification, NotificationEvent
from nidaan.notifications.service import Draft, notifications_service
from nidaan.patients.models import Patient
from tests.fixtures.results import principal_of
from tests.notifications.conftest import DLT_TEMPLATES, SIM_TOKEN, Providers, free_port
from tests.notifications.world import World, make_world

pytestmark = pytest.mark.usefixtures("job_app_open")


async def queue_payment_message(
    committing_session: Any, world: World, amount: str = "₹1,250.00"
) -> uuid.UUID:
    async with committing_session() as session:
        patient = await session.get(Patient, world.patient_id)
        recipient = await notifications_service.patient_recipient(
            session, world.organisation_id, patient
        )
        row = await notifications_service.queue(
            session,
            world.organisation_id,
            recipient,
            Draft(
                template=TemplateName.PAYMENT_CONFIRMATION,
                kind=MessageKind.TEMPLATE,
                parameters=(amount, "ORD-1001", "available at the lab counter"),
                subject=("payment", uuid.uuid4()),
                dedupe_base=f"payment:{uuid.uuid4()}",
            ),
            about_patient_id=world.patient_id,
            channels=[Channel.WHATSAPP, Channel.SMS, Channel.EMAIL],
        )
        assert row is not None
        return row.id


async def load(
    committing_session: Any, notification_id: uuid.UUID
) -> tuple[Notification, list[Any]]:
    async with committing_session() as session:
        row = await session.get(Notification, notification_id)
        assert row is not None
        events = list(
            await session.scalars(
                select(NotificationEvent)
                .where(NotificationEvent.notification_id == notification_id)
                .order_by(NotificationEvent.recorded_at)
            )
        )
        return row, events


def sent_to(providers: Providers, notification_id: uuid.UUID) -> int:
    return sum(
        1
        for m in providers.whatsapp.messages.values()
        if m.payload.get("biz_opaque_callback_data") == str(notification_id)
    )


async def test_throughput_errors_are_retried_with_backoff(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    first_world = await make_world(committing_session, verify=False)
    second_world = await make_world(committing_session, verify=False)
    first = await queue_payment_message(committing_session, first_world)
    second = await queue_payment_message(committing_session, second_world)
    assert await dispatch.send(first, settings) == "sent"
    providers.whatsapp.fail_next.append((400, 130429, "Rate limit hit"))
    assert await dispatch.send(second, settings) == "pending"
    row, events = await load(committing_session, second)
    assert (row.attempts, row.error_code) == (1, "130429")
    assert row.next_attempt_at is not None
    assert row.claimed_at is not None
    # 4 s after the refusal (which came after the claim), however slow the machine is.
    assert timedelta(seconds=4) <= row.next_attempt_at - row.claimed_at < timedelta(seconds=60)
    assert events[-1].detail == "retry in 4 s"
    # Not due yet: a job arriving early sends nothing.
    assert await dispatch.send(second, settings) == "pending"
    assert sent_to(providers, second) == 0
    async with committing_session() as session:
        (await session.get(Notification, second)).next_attempt_at = utcnow()  # type: ignore[union-attr]
    assert await dispatch.send(second, settings) == "sent"
    row, _ = await load(committing_session, second)
    assert row.attempts == 2
    assert sent_to(providers, second) == 1


async def test_unreachable_provider_is_retried(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, verify=False)
    notification = await queue_payment_message(committing_session, world)
    set_channel(
        Channel.WHATSAPP,
        WhatsAppCloudChannel(
            base_url=f"http://127.0.0.1:{free_port()}",
            version="v21.0",
            phone_number_id=providers.whatsapp.phone_number_id,
            access_token=SIM_TOKEN,
        ),
    )
    assert await dispatch.send(notification, settings) == "pending"
    row, _ = await load(committing_session, notification)
    assert row.error_code == "connect"


async def test_an_ambiguous_failure_is_never_sent_again(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    """The connection drops after the request went out: Meta may have it."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    world = await make_world(committing_session, verify=False)
    notification = await queue_payment_message(committing_session, world)
    set_channel(
        Channel.WHATSAPP,
        WhatsAppCloudChannel(
            base_url=f"http://127.0.0.1:{port}",
            version="v21.0",
            phone_number_id="1",
            access_token=SIM_TOKEN,
        ),
    )
    try:
        assert await dispatch.send(notification, settings) == "uncertain"
        assert await dispatch.send(notification, settings) is None
    finally:
        server.close()
        await server.wait_closed()
    row, events = await load(committing_session, notification)
    assert row.status == "uncertain"
    assert [e.status for e in events] == ["pending", "sending", "uncertain"]


async def test_many_jobs_for_one_message_send_it_once(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    worlds = [await make_world(committing_session, verify=False) for _ in range(3)]
    ids = [await queue_payment_message(committing_session, world) for world in worlds]
    results = await asyncio.gather(*[dispatch.send(i, settings) for i in ids for _ in range(4)])
    assert results.count("sent") == 3
    for notification in ids:
        assert sent_to(providers, notification) == 1


async def test_messages_to_one_person_are_paced(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    paced = settings.model_copy(update={"whatsapp_pair_interval_seconds": 6.0})
    world = await make_world(committing_session, verify=False)
    first = await queue_payment_message(committing_session, world)
    second = await queue_payment_message(committing_session, world, amount="₹10.00")
    assert await dispatch.send(first, paced) == "sent"
    assert await dispatch.send(second, paced) == "pending"
    row, _ = await load(committing_session, second)
    earlier, _ = await load(committing_session, first)
    assert earlier.claimed_at is not None
    assert row.next_attempt_at == earlier.claimed_at + timedelta(seconds=6)
    assert row.attempts == 0
    assert sent_to(providers, second) == 0


async def test_an_opt_out_stops_a_queued_message(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, verify=False)
    notification = await queue_payment_message(committing_session, world)
    async with committing_session() as session:
        await notifications_service.set_consent(
            session,
            principal_of(world.lab.users["front"]),
            world.patient_id,
            Channel.WHATSAPP,
            opted_in=False,
        )
    assert await dispatch.send(notification, settings) is None
    row, events = await load(committing_session, notification)
    assert row.status == "skipped"
    assert "opted out" in (events[-1].detail or "")
    assert sent_to(providers, notification) == 0


async def test_undeliverable_on_whatsapp_falls_back_to_dlt_sms(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(
        committing_session, language="hi", consents=(Channel.WHATSAPP, Channel.SMS), verify=False
    )
    providers.whatsapp.undeliverable.add(world.mobile.lstrip("+"))
    notification = await queue_payment_message(committing_session, world)
    assert await dispatch.send(notification, settings) == "sent"
    await providers.whatsapp.settle()
    async with committing_session() as session:
        fallback = await session.scalar(
            select(Notification).where(Notification.fallback_of_id == notification)
        )
    assert fallback is not None
    assert (fallback.channel, fallback.status) == ("sms", "pending")
    assert await dispatch.send(fallback.id, settings) == "sent"
    failed, _ = await load(committing_session, notification)
    assert (failed.status, failed.error_code) == ("failed", "131026")
    [sms] = [m for m in providers.sms.messages if m.reference == str(fallback.id)]
    assert sms.to == world.mobile.lstrip("+")
    assert sms.dlt_template_id == DLT_TEMPLATES["payment_confirmation:hi"]
    assert sms.text.startswith("भुगतान प्राप्त हुआ: ऑर्डर ORD-1001 के लिए ₹1,250.00")
    assert providers.sms.rejected == []
    # A redelivered failure webhook makes no second fallback.
    status = {
        "id": failed.provider_message_id,
        "status": "failed",
        "timestamp": "1",
        "errors": [{"code": 131026, "title": "Message undeliverable"}],
    }
    await providers.whatsapp.post_webhook(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "1", "changes": [{"field": "messages", "value": {"statuses": [status]}}]}
            ],
        }
    )
    async with committing_session() as session:
        fallbacks = list(
            await session.scalars(
                select(Notification).where(Notification.fallback_of_id == notification)
            )
        )
    assert len(fallbacks) == 1
    assert json.loads(fallbacks[0].parameters)[0] == "₹1,250.00"


async def test_a_channel_without_settings_is_skipped(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, verify=False)
    notification = await queue_payment_message(committing_session, world)
    set_channel(Channel.WHATSAPP, None)
    assert await dispatch.send(notification, settings) is None
    row, events = await load(committing_session, notification)
    assert row.status == "skipped"
    assert "not configured" in (events[-1].detail or "")


async def test_the_sweeper_requeues_only_messages_that_lost_their_job(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, verify=False)
    queued = await queue_payment_message(committing_session, world)
    orphan = await queue_payment_message(committing_session, world, amount="₹20.00")
    async with committing_session() as session:
        for notification_id in (queued, orphan):
            row = await session.get(Notification, notification_id)
            assert row is not None
            row.created_at = utcnow() - timedelta(minutes=5)
        # The orphan's job was lost (a crash between commit and enqueue, a purge).
        await session.execute(
            text("DELETE FROM procrastinate_jobs WHERE queueing_lock = :lock"),
            {"lock": f"notify:{orphan}"},
        )
    requeued, _ = await dispatch.sweep(settings)
    assert requeued >= 1
    async with committing_session() as session:
        locks = set(
            await session.scalars(
                text(
                    "SELECT queueing_lock FROM procrastinate_jobs WHERE status = 'todo' "
                    "AND queueing_lock = ANY(:locks)"
                ),
                {"locks": [f"notify:{queued}", f"notify:{orphan}"]},
            )
        )
    assert locks == {f"notify:{queued}", f"notify:{orphan}"}
