"""GET/POST /webhooks/whatsapp: the hub challenge, X-Hub-Signature-256 over the raw body,
de-duplication, statuses in any order, unparseable bodies kept, STOP replies."""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import get_settings
from nidaan.kit.ids import new_id
from nidaan.kit.time import utcnow
from nidaan.notifications.enums import Channel
from nidaan.notifications.models import (
    Notification,
    NotificationConsent,
    NotificationEvent,
    WebhookDelivery,
)
from nidaan.notifications.service import address_index, notifications_service
from nidaan.notifications.webhooks import signature_for
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import create_user
from tests.fixtures.results import principal_of


def secret() -> str:
    value = get_settings().whatsapp_app_secret
    assert value is not None
    return value.get_secret_value()


def envelope(statuses: list[dict[str, Any]] = (), messages: list[dict[str, Any]] = ()) -> dict:  # type: ignore[assignment]
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "+91 20 2553 0000", "phone_number_id": "1"},
    }
    if statuses:
        value["statuses"] = list(statuses)
    if messages:
        value["contacts"] = [{"profile": {"name": "सुनीता"}, "wa_id": "919876543210"}]
        value["messages"] = list(messages)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


async def post(
    client: httpx.AsyncClient, body: bytes, signature: str | None = "auto"
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature == "auto":
        headers["x-hub-signature-256"] = signature_for(secret(), body)
    elif signature is not None:
        headers["x-hub-signature-256"] = signature
    return await client.post("/webhooks/whatsapp", content=body, headers=headers)


def status(wamid: str, name: str, at: int, code: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": name,
        "timestamp": str(at),
        "recipient_id": "919876543210",
    }
    if code is not None:
        item["errors"] = [{"code": code, "title": "Re-engagement message"}]
    return item


async def sent_message(session: AsyncSession, organisation: Organisation) -> Notification:
    patient = await create_patient(session, organisation, mobile="9876543210")
    row = Notification(
        id=new_id(),
        organisation_id=organisation.id,
        dedupe_key=f"test:{uuid.uuid4()}",
        template="test_result_ready",
        kind="template",
        language="en",
        channel="whatsapp",
        recipient_type="patient",
        patient_id=patient.id,
        to_address=patient.mobile,
        to_index=address_index(Channel.WHATSAPP, patient.mobile or ""),
        parameters=json.dumps(["Sunita Sharma", "CBC", "{link}"]),
        status="sent",
        attempts=1,
        provider_message_id=f"wamid.{uuid.uuid4().hex}",
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


async def test_hub_challenge_only_with_the_verify_token(client: httpx.AsyncClient) -> None:
    token = get_settings().whatsapp_verify_token
    assert token is not None
    ok = await client.get(
        "/webhooks/whatsapp",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": token.get_secret_value(),
            "hub.challenge": "1158201444",
        },
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {
            "hub.mode": "unsubscribe",
            "hub.verify_token": token.get_secret_value(),
            "hub.challenge": "1",
        },
        {"hub.challenge": "1"},
    ):
        refused = await client.get("/webhooks/whatsapp", params=params)
        assert refused.status_code == 403
        assert refused.text != "1"


async def test_signature_is_checked_over_the_raw_bytes(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    row = await sent_message(session, organisation)
    body = json.dumps(envelope([status(row.provider_message_id or "", "delivered", 1)])).encode()
    inbox_before = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    missing = await post(client, body, signature=None)
    assert (missing.status_code, missing.json()["code"]) == (401, "webhook_signature_missing")
    forged = await post(client, body, signature="sha256=" + "0" * 64)
    assert (forged.status_code, forged.json()["code"]) == (403, "webhook_signature_invalid")
    other_key = await post(client, body, signature=signature_for("not-the-secret", body))
    assert other_key.status_code == 403
    # The same JSON re-serialised differently is not what was signed.
    respaced = json.dumps(json.loads(body), indent=1).encode()
    assert (
        await post(client, respaced, signature=signature_for(secret(), body))
    ).status_code == 403
    await session.refresh(row)
    assert row.status == "sent"
    assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == inbox_before

    # Meta signs the escaped rendering; Devanagari in the body must verify byte for byte.
    inbound = {
        "from": "919999900000",
        "id": "wamid.x",
        "timestamp": "1",
        "type": "text",
        "text": {"body": "नमस्ते"},
    }
    escaped = json.dumps(envelope(messages=[inbound])).encode()
    assert b"\\u0928" in escaped
    assert (await post(client, escaped)).status_code == 200
    raw_utf8 = json.dumps(envelope(messages=[inbound]), ensure_ascii=False).encode()
    assert (await post(client, raw_utf8)).status_code == 200


async def test_duplicates_and_late_statuses_never_move_back(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    row = await sent_message(session, organisation)
    wamid = row.provider_message_id or ""
    now = int(time.time())
    read = json.dumps(envelope([status(wamid, "read", now + 2)])).encode()
    delivered = json.dumps(envelope([status(wamid, "delivered", now + 1)])).encode()
    for body in (read, read, delivered, delivered):
        response = await post(client, body)
        assert response.status_code == 200
    await session.refresh(row)
    assert row.status == "read"
    assert row.read_at is not None
    assert row.delivered_at is not None
    events = list(
        await session.scalars(
            select(NotificationEvent.status).where(
                NotificationEvent.notification_id == row.id, NotificationEvent.source == "provider"
            )
        )
    )
    assert sorted(events) == ["delivered", "read"]
    # The identical body delivered twice is stored once.
    stored = await session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.body == read)
    )
    assert stored == 1


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    steps=st.lists(
        st.sampled_from(["sent", "delivered", "read", "failed"]), min_size=1, max_size=8
    ),
    seed=st.integers(0, 10**6),
    batch=st.integers(1, 4),
)
async def test_any_order_batching_and_duplication_gives_one_answer(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    steps: list[str],
    seed: int,
    batch: int,
) -> None:
    row = await sent_message(session, organisation)
    wamid = row.provider_message_id or ""
    rank = {"sent": 4, "failed": 5, "delivered": 6, "read": 7}
    statuses = [
        status(wamid, s, 1_700_000_000 + i, 131026 if s == "failed" else None)
        for i, s in enumerate(steps)
    ]
    deliveries = statuses + random.Random(seed).sample(statuses, k=len(statuses) // 2)
    random.Random(seed).shuffle(deliveries)
    for start in range(0, len(deliveries), batch):
        body = json.dumps(envelope(deliveries[start : start + batch])).encode()
        assert (await post(client, body)).status_code == 200
    await session.refresh(row)
    assert row.status == max(steps, key=rank.__getitem__)
    recorded = list(
        await session.scalars(
            select(NotificationEvent.status).where(
                NotificationEvent.notification_id == row.id, NotificationEvent.source == "provider"
            )
        )
    )
    assert sorted(recorded) == sorted(set(steps))
    if row.status == "failed":
        assert row.error_code == "131026"


async def test_unparseable_bodies_are_kept_with_their_error(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    body = b'{"object": "whatsapp_business_account", "entry": [ {broken'
    assert (await post(client, body)).status_code == 200
    kept = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.body == body))
    assert kept is not None
    assert kept.error is not None
    assert kept.error.startswith("unparseable")


async def test_stop_reply_withdraws_whatsapp_consent(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    row = await sent_message(session, organisation)
    desk = await create_user(session, organisation, roles=("front_desk",))
    assert row.patient_id is not None
    await notifications_service.set_consent(
        session, principal_of(desk), row.patient_id, Channel.WHATSAPP, opted_in=True
    )
    reply = {
        "from": "919876543210",
        "id": "wamid.r",
        "timestamp": "1",
        "type": "text",
        "text": {"body": " STOP "},
    }
    assert (await post(client, json.dumps(envelope(messages=[reply])).encode())).status_code == 200
    consent = await session.scalar(
        select(NotificationConsent).where(
            NotificationConsent.patient_id == row.patient_id,
            NotificationConsent.channel == "whatsapp",
        )
    )
    assert consent is not None
    assert (consent.opted_in, consent.source) == (False, "whatsapp_reply")
