"""WhatsApp webhooks: verification handshake, signature over the raw body, the raw inbox,
and applying delivery statuses once, in any order.

Meta signs every POST with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw
body)>``; we hash the exact bytes received (re-serialised JSON would not match for Hindi
text). A verified body is stored as received (identical redeliveries once), then processed
in a savepoint: a body we cannot process keeps its error in the inbox and is retried by the
sweeper, so nothing received is lost. Statuses are de-duplicated on (message, status) and
combined by rank, so "read" is never undone by a late "delivered".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import Settings
from nidaan.kit.errors import NidaanError
from nidaan.kit.ids import new_id
from nidaan.kit.time import utcnow
from nidaan.notifications.dispatch import queue_fallback
from nidaan.notifications.domain import PROVIDER_STATUSES, combined
from nidaan.notifications.enums import Channel, NotificationStatus
from nidaan.notifications.errors import (
    WebhookNotConfigured,
    WebhookSignatureInvalid,
    WebhookSignatureMissing,
)
from nidaan.notifications.models import Notification, NotificationEvent, WebhookDelivery
from nidaan.notifications.service import address_index, notifications_service

logger = logging.getLogger(__name__)

S = NotificationStatus
PROVIDER = "whatsapp"
#: Replies that withdraw WhatsApp consent (English and Hindi).
STOP_WORDS = frozenset({"stop", "unsubscribe", "stop all", "cancel", "रोकें", "बंद करें", "बंद"})


def check_verify_token(settings: Settings, mode: str | None, token: str | None) -> bool:
    expected = settings.whatsapp_verify_token
    if expected is None or not expected.get_secret_value():
        raise WebhookNotConfigured("NIDAAN_WHATSAPP_VERIFY_TOKEN is not set.")
    return mode == "subscribe" and hmac.compare_digest(
        (token or "").encode(), expected.get_secret_value().encode()
    )


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(settings: Settings, body: bytes, header: str | None) -> None:
    """Raise unless ``header`` is the App Secret's HMAC-SHA256 of exactly ``body``."""
    secret = settings.whatsapp_app_secret
    if secret is None or not secret.get_secret_value():
        raise WebhookNotConfigured("NIDAAN_WHATSAPP_APP_SECRET is not set.")
    if not header:
        raise WebhookSignatureMissing("X-Hub-Signature-256 is missing.")
    expected = signature_for(secret.get_secret_value(), body)
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        raise WebhookSignatureInvalid("X-Hub-Signature-256 does not match the body.")


async def receive(session: AsyncSession, body: bytes) -> WebhookDelivery | None:
    """Store a verified body and process it; None when the same body was already stored."""
    digest = hashlib.sha256(body).hexdigest()
    stored_id = await session.scalar(
        insert(WebhookDelivery)
        .values(id=new_id(), provider=PROVIDER, body=body, body_sha256=digest)
        .on_conflict_do_nothing(index_elements=["provider", "body_sha256"])
        .returning(WebhookDelivery.id)
    )
    if stored_id is None:
        return None
    row = await session.get(WebhookDelivery, stored_id)
    assert row is not None
    await process(session, row)
    return row


async def process(session: AsyncSession, row: WebhookDelivery) -> None:
    """Apply one stored body; an error is kept on the row (and the row left for a retry)."""
    try:
        payload = json.loads(row.body)
        if not isinstance(payload, dict):
            raise ValueError("the body is not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        row.error = f"unparseable: {exc}"[:500]
        row.processed_at = utcnow()  # nothing to retry; kept with its error
        logger.warning("WhatsApp webhook %s is not JSON; kept with its error", row.id)
        return
    try:
        async with session.begin_nested():
            unmatched = await apply_payload(session, payload)
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"[:500]
        logger.exception("WhatsApp webhook %s could not be processed; will retry", row.id)
        return
    row.error = f"{unmatched} status(es) for messages we did not send" if unmatched else None
    row.processed_at = utcnow()


async def apply_payload(session: AsyncSession, payload: dict[str, Any]) -> int:
    """Every entry, change, status and message of one webhook body; returns how many
    statuses named a message we do not know."""
    unmatched = 0
    for entry in _list(payload.get("entry")):
        for change in _list(entry.get("changes")):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            for status in _list(value.get("statuses")):
                if not await apply_status(session, status):
                    unmatched += 1
            for message in _list(value.get("messages")):
                await inbound_message(session, message)
            for error in _list(value.get("errors")):
                logger.error("WhatsApp account error %s: %s", error.get("code"), error.get("title"))
    return unmatched


def _list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


async def apply_status(session: AsyncSession, status: dict[str, Any]) -> bool:
    """Record one status of one message (once) and move the message's status forward."""
    try:
        incoming = S(str(status.get("status")))
    except ValueError:
        return True  # "played" and future statuses: nothing to do
    if incoming not in PROVIDER_STATUSES:
        return True
    row = await _message_for(session, status)
    if row is None:
        return False
    occurred = _timestamp(status.get("timestamp"))
    errors = _list(status.get("errors"))
    code = str(errors[0].get("code")) if errors else None
    title = str(errors[0].get("title") or errors[0].get("message") or "")[:300] if errors else None
    recorded = await session.scalar(
        insert(NotificationEvent)
        .values(
            id=new_id(),
            organisation_id=row.organisation_id,
            notification_id=row.id,
            status=incoming.value,
            source="provider",
            occurred_at=occurred,
            error_code=code,
            error_title=title,
        )
        .on_conflict_do_nothing(
            index_elements=["notification_id", "status"], index_where=text("source = 'provider'")
        )
        .returning(NotificationEvent.id)
    )
    if recorded is None:
        return True  # a redelivered status
    before = S(row.status)
    after = combined(before, incoming)
    row.status = after.value
    if incoming is S.SENT:
        row.sent_at = row.sent_at or occurred
    elif incoming is S.DELIVERED:
        row.delivered_at = row.delivered_at or occurred
    elif incoming is S.READ:
        row.read_at = row.read_at or occurred
        row.delivered_at = row.delivered_at or occurred  # "delivered" may be skipped
    elif incoming is S.FAILED:
        row.failed_at = row.failed_at or occurred
        if after is S.FAILED:
            row.error_code, row.error_title = (code or "unknown")[:32], title
    await session.flush()
    if after is S.FAILED and before is not S.FAILED:
        await fallback_quietly(session, row)
    return True


async def fallback_quietly(session: AsyncSession, row: Notification) -> None:
    """Queue the fallback; if it cannot be made, the failure is still recorded."""
    try:
        async with session.begin_nested():
            await queue_fallback(session, row)
    except NidaanError as error:
        logger.warning("No fallback for notification %s: %s", row.id, error.code)


async def _message_for(session: AsyncSession, status: dict[str, Any]) -> Notification | None:
    wamid = str(status.get("id") or "")
    row = None
    if wamid:
        row = await session.scalar(
            select(Notification).where(Notification.provider_message_id == wamid).with_for_update()
        )
    if row is None:
        # Our notification id rides along in biz_opaque_callback_data: it matches a status
        # even if the send's response (and its wamid) was never recorded.
        try:
            notification_id = uuid.UUID(str(status.get("biz_opaque_callback_data")))
        except ValueError:
            return None
        row = await session.scalar(
            select(Notification).where(Notification.id == notification_id).with_for_update()
        )
        if row is not None and row.provider_message_id is None and wamid:
            row.provider_message_id = wamid[:200]
    return row


def _timestamp(raw: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(str(raw)), UTC)
    except (TypeError, ValueError, OverflowError):
        return utcnow()


async def inbound_message(session: AsyncSession, message: dict[str, Any]) -> None:
    """A person wrote to the lab's number: "STOP" withdraws their WhatsApp consent."""
    sender = "".join(ch for ch in str(message.get("from") or "") if ch.isdigit())
    body = message.get("text", {}).get("body") if isinstance(message.get("text"), dict) else None
    if message.get("type") == "button" and isinstance(message.get("button"), dict):
        body = message["button"].get("text")
    if not sender or not isinstance(body, str):
        return
    if " ".join(body.split()).casefold() in STOP_WORDS:
        count = await notifications_service.opt_out_address(
            session,
            Channel.WHATSAPP,
            address_index(Channel.WHATSAPP, f"+{sender}"),
            "whatsapp_reply",
        )
        logger.info("WhatsApp opt-out reply withdrew consent for %d patient record(s)", count)


async def retry_unprocessed(session: AsyncSession, limit: int = 200) -> int:
    """Process again the stored bodies that failed (the sweeper calls this)."""
    rows = list(
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.processed_at.is_(None))
            .order_by(WebhookDelivery.received_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        await process(session, row)
    return len(rows)
