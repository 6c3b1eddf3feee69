"""The outbox relay: publish domain events to NATS JetStream or Kafka, at least once, in order.

Each round takes the oldest unpublished events (by id: UUIDv7, so in the order they were
written; an aggregate's later event is written only after the earlier one's transaction
committed, because both hold the aggregate's row lock), publishes them one by one waiting
for the broker's acknowledgement, and marks the acknowledged ones ``relayed_at`` in the
same transaction that locked them. A crash between the acknowledgement and the commit
publishes those events again: every message carries the event id (NATS ``Nats-Msg-Id``,
which JetStream de-duplicates; Kafka header ``event-id``), so subscribers drop repeats. A
broker outage stops the round at the first failure; the rest wait, in order, for the next.

Only one relay runs at a time per database (a PostgreSQL advisory lock), whichever process
it is in: ``nidaan relay`` or the worker's periodic task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from nidaan.config import Settings
from nidaan.events.models import OutboxEvent
from nidaan.kit.db import session_scope
from nidaan.kit.metrics import RELAY_FAILURES, RELAY_PUBLISHED

logger = logging.getLogger(__name__)

#: Version of the message envelope (docs/events.md); payload fields are each event's own.
ENVELOPE_VERSION = 1
#: Advisory lock key of the relay ("nidaan relay" in ASCII, folded to 63 bits).
RELAY_LOCK = 0x6E696461616E72
BATCH = 200
#: Payload keys holding personal data, left out unless a subscriber may have them.
PERSONAL = re.compile(
    r"name|mobile|phone|email|aadhaar|abha|address|birth|dob|whatsapp", re.IGNORECASE
)


class Sink(Protocol):
    """One broker connection: ``publish`` returns once the broker has stored the message."""

    async def publish(
        self, subject: str, key: str, message_id: str, body: bytes
    ) -> None: ...  # pragma: no cover

    async def close(self) -> None: ...  # pragma: no cover


def envelope(row: OutboxEvent, *, include_personal_data: bool) -> dict[str, Any]:
    """The JSON message for one outbox row (schema in docs/events.md)."""
    data = row.payload if include_personal_data else _without_personal(row.payload)
    return {
        "id": str(row.id),
        "type": row.name,
        "version": ENVELOPE_VERSION,
        "organisation_id": str(row.organisation_id),
        "occurred_at": row.occurred_at.isoformat(),
        "request_id": row.request_id,
        "data": data,
    }


def _without_personal(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_personal(item)
            for key, item in value.items()
            if not PERSONAL.search(str(key))
        }
    if isinstance(value, list):
        return [_without_personal(item) for item in value]
    return value


def subject_for(prefix: str, row: OutboxEvent) -> str:
    """NATS subject ``<prefix>.<organisation id>.<event name>``, e.g.
    ``nidaan.0193….report.finalized`` (subscribe to ``nidaan.*.report.>``)."""
    return f"{prefix}.{row.organisation_id}.{row.name}"


# ---- sinks ------------------------------------------------------------------------------


class NatsSink:
    """JetStream: the stream ``<PREFIX>_EVENTS`` holds ``<prefix>.>``; created if missing."""

    def __init__(self, connection: Any, stream: str) -> None:
        self.connection = connection
        self.jetstream = connection.jetstream()
        self.stream = stream

    @classmethod
    async def connect(cls, url: str, prefix: str) -> NatsSink:
        import nats
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        connection = await nats.connect(
            url, connect_timeout=5, max_reconnect_attempts=0, allow_reconnect=False
        )
        sink = cls(connection, f"{prefix.upper()}_EVENTS")
        try:
            await sink.jetstream.stream_info(sink.stream)
        except NotFoundError:
            await sink.jetstream.add_stream(
                StreamConfig(
                    name=sink.stream,
                    subjects=[f"{prefix}.>"],
                    duplicate_window=24 * 3600.0,  # de-duplicate re-publishes for a day
                )
            )
        return sink

    async def publish(self, subject: str, key: str, message_id: str, body: bytes) -> None:
        await self.jetstream.publish(subject, body, headers={"Nats-Msg-Id": message_id}, timeout=5)

    async def close(self) -> None:
        await self.connection.close()


class KafkaSink:
    """Kafka through aiokafka: one topic ``<prefix>.events``, keyed by organisation, so the
    order of an organisation's events is kept within its partition."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    @classmethod
    async def connect(cls, url: str, prefix: str) -> KafkaSink:
        from aiokafka import AIOKafkaProducer

        servers = urlsplit(url).netloc
        producer = AIOKafkaProducer(bootstrap_servers=servers, enable_idempotence=True, acks="all")
        await producer.start()
        return cls(producer, f"{prefix}.events")

    async def publish(self, subject: str, key: str, message_id: str, body: bytes) -> None:
        await self.producer.send_and_wait(
            self.topic,
            body,
            key=key.encode(),
            headers=[("event-id", message_id.encode()), ("subject", subject.encode())],
        )

    async def close(self) -> None:
        await self.producer.stop()


async def open_sink(settings: Settings) -> Sink:
    """Connect to the broker named by ``NIDAAN_EVENTS_URL``."""
    url = settings.events_url
    if not url:
        raise ValueError("NIDAAN_EVENTS_URL is not set")
    scheme = urlsplit(url).scheme
    if scheme in ("nats", "tls"):
        return await NatsSink.connect(url, settings.events_subject_prefix)
    if scheme == "kafka":
        return await KafkaSink.connect(url, settings.events_subject_prefix)
    raise ValueError(f"NIDAAN_EVENTS_URL must start with nats:// or kafka://, not {scheme}://")


# ---- the relay --------------------------------------------------------------------------


@dataclass
class RoundResult:
    published: int
    failed: bool = False
    locked_out: bool = False


async def relay_round(settings: Settings, sink: Sink, *, batch: int = BATCH) -> RoundResult:
    """Publish up to ``batch`` unpublished events in order; mark what the broker acknowledged."""
    async with session_scope(settings) as session:
        if not await session.scalar(select(func.pg_try_advisory_xact_lock(RELAY_LOCK))):
            return RoundResult(0, locked_out=True)
        rows = list(
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.relayed_at.is_(None))
                .order_by(OutboxEvent.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        )
        published: list[uuid.UUID] = []
        failed = False
        for row in rows:
            body = json.dumps(
                envelope(row, include_personal_data=settings.events_include_personal_data),
                separators=(",", ":"),
            ).encode()
            try:
                await sink.publish(
                    subject_for(settings.events_subject_prefix, row),
                    str(row.organisation_id),
                    str(row.id),
                    body,
                )
            except Exception as exc:
                # Stop here: a later event must not overtake this one.
                logger.warning("relay: publishing %s failed: %r", row.id, exc)
                RELAY_FAILURES.inc()
                failed = True
                break
            published.append(row.id)
        await _mark(session, published)
    RELAY_PUBLISHED.inc(len(published))
    return RoundResult(len(published), failed=failed)


async def _mark(session: AsyncSession, ids: list[uuid.UUID]) -> None:
    if ids:
        await session.execute(
            text("UPDATE event_outbox SET relayed_at = now() WHERE id = ANY(:ids)"),
            {"ids": ids},
        )


async def drain(settings: Settings, sink: Sink) -> int:
    """Publish everything waiting; the number published (stops at a broker failure)."""
    total = 0
    while True:
        result = await relay_round(settings, sink)
        total += result.published
        if result.failed or result.locked_out or result.published == 0:
            return total


async def run_relay(settings: Settings, *, interval: float = 1.0) -> None:
    """Relay until cancelled, reconnecting to the broker after an outage."""
    sink: Sink | None = None
    try:
        while True:
            try:
                if sink is None:
                    sink = await open_sink(settings)
                    logger.info("relay: connected to %s", _safe(settings.events_url or ""))
                result = await relay_round(settings, sink)
                if result.failed:
                    await sink.close()
                    sink = None
            except (OSError, TimeoutError) as exc:
                logger.warning("relay: broker unreachable: %r", exc)
                RELAY_FAILURES.inc()
                sink = None
                result = RoundResult(0, failed=True)
            except Exception as exc:  # a broker client's own error types
                logger.warning("relay: round failed: %r", exc)
                RELAY_FAILURES.inc()
                if sink is not None:
                    with _suppress():
                        await sink.close()
                sink = None
                result = RoundResult(0, failed=True)
            if result.published < BATCH:
                await asyncio.sleep(interval if not result.failed else interval * 5)
    finally:
        if sink is not None:
            await sink.close()


def _suppress() -> Any:
    import contextlib

    return contextlib.suppress(Exception)


def _safe(url: str) -> str:
    """The broker URL without credentials, for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.hostname else parts.scheme


async def relay_lag_seconds(connection: AsyncConnection) -> float:
    """Age of the oldest event not yet published (0 when none waits)."""
    age = await connection.scalar(
        text(
            "SELECT coalesce(extract(epoch FROM now() - min(occurred_at)), 0) "
            "FROM event_outbox WHERE relayed_at IS NULL"
        )
    )
    return float(age or 0)
