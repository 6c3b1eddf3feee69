"""Finalise a report -> the WhatsApp request in the simulator -> delivered back by a signed
webhook -> shown in GET /api/v1/notifications; the PDF's document message outside the
24-hour window falls back to e-mail with the PDF attached."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from nidaan.config import Settings
from nidaan.kit.jobs import run_pending_jobs
from nidaan.notifications.enums import Channel
from tests.notifications.conftest import Providers, live_get
from tests.notifications.world import make_world, notifications_of, wait_for

pytestmark = pytest.mark.usefixtures("job_app_open")


async def test_finalised_report_goes_out_and_comes_back_delivered(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(
        committing_session, language="hi", consents=(Channel.WHATSAPP, Channel.EMAIL)
    )
    await run_pending_jobs(settings)  # report rendered -> report.finalized -> messages sent

    requests = providers.whatsapp_requests(world.mobile)
    template = next(r for r in requests if r["type"] == "template")
    assert template["to"] == world.mobile.lstrip("+")
    assert template["template"]["name"] == "test_result_ready"
    assert template["template"]["language"] == {"policy": "deterministic", "code": "hi"}
    parameters = [p["text"] for p in template["template"]["components"][0]["parameters"]]
    assert parameters[0] == "Sunita Sharma"
    assert sorted(parameters[1].split(" और ")) == ["Glucose, fasting", "Haemoglobin"]
    assert parameters[2].startswith(f"{providers.app_url}/files/")
    document = next(r for r in requests if r["type"] == "document")
    assert document["document"]["filename"].startswith("Report_RPT-")
    assert document["document"]["filename"].endswith(".pdf")

    await providers.whatsapp.settle()
    # The failure webhook queued the e-mail fallback; the worker sends it.
    await run_pending_jobs(settings)

    async def settled() -> list[Any]:
        rows = await notifications_of(committing_session, world)
        done = {"read", "delivered", "failed", "skipped", "sent"}
        email = [r for r in rows if r.channel == "email"]
        return rows if email and all(r.status in done for r in rows) else []

    rows = await wait_for(settled)
    everything = await notifications_of(committing_session, world)
    assert rows, [(r.channel, r.kind, r.status, r.error_code) for r in everything]
    by_kind = {(r.channel, r.kind): r for r in rows}
    sent = by_kind[("whatsapp", "template")]
    assert sent.status == "read"
    assert sent.provider_message_id is not None
    assert sent.provider_message_id.startswith("wamid.")
    # The document was outside the 24-hour window: Meta fails it later (131047) ...
    failed = by_kind[("whatsapp", "document")]
    assert (failed.status, failed.error_code) == ("failed", "131047")
    # ... and the PDF goes by e-mail instead, attached.
    fallback = by_kind[("email", "document")]
    assert fallback.fallback_of_id == failed.id
    assert fallback.status == "sent"
    mails = providers.smtp.sink.messages
    assert len(mails) == 1
    attachment = next(mails[0].iter_attachments())
    assert attachment.get_filename().startswith("Report_RPT-")
    assert attachment.get_content().startswith(b"%PDF")

    listed = await live_get(
        providers.app_url,
        "/api/v1/notifications",
        world.headers("front"),
        patient=str(world.patient_id),
    )
    items = {(i["channel"], i["kind"]): i for i in listed["items"]}
    history = [h["status"] for h in items[("whatsapp", "template")]["history"]]
    assert history[:2] == ["pending", "sending"]
    assert {"sent", "delivered", "read"} <= set(history)
    assert items[("whatsapp", "template")]["to"].endswith(world.mobile[-4:])
    assert world.mobile not in str(listed)  # addresses are masked
    assert items[("whatsapp", "document")]["error_code"] == "131047"


async def test_inside_the_window_the_pdf_arrives_as_a_document(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, consents=(Channel.WHATSAPP,))
    await providers.whatsapp.inbound(world.mobile, "Hello, is my report ready?")
    await run_pending_jobs(settings)
    await providers.whatsapp.settle()
    message = next(m for m in providers.whatsapp.messages.values() if m.type == "document")
    assert message.media is not None
    assert message.media["status"] == 200
    assert message.media["content_type"] == "application/pdf"

    async def delivered() -> list[Any]:
        rows = await notifications_of(committing_session, world)
        return rows if all(r.status == "read" for r in rows) and len(rows) == 2 else []

    rows = await wait_for(delivered)
    assert len(rows) == 2
    from nidaan.files.models import StoredFile

    async with committing_session() as session:
        stored = await session.get(StoredFile, rows[0].file_id)
    assert stored is not None
    assert message.media["sha256"] == stored.sha256
    assert hashlib.sha256(b"").hexdigest() != stored.sha256


async def test_no_consent_means_nothing_is_sent(
    providers: Providers, settings: Settings, committing_session: Any
) -> None:
    world = await make_world(committing_session, consents=())
    await run_pending_jobs(settings)
    assert providers.whatsapp_requests(world.mobile) == []
    rows = await notifications_of(committing_session, world)
    assert [(r.status, r.kind) for r in rows] == [("skipped", "template")]
