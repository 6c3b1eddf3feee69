"""The outbox relay against the real NATS JetStream server of this machine (127.0.0.1:4222):
in order, at least once, de-duplicated by event id, through crashes and broker outages."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from nidaan.config import Settings
from nidaan.events.base import DomainEvent
from nidaan.events.relay import RELAY_LOCK, NatsSink, drain, relay_round
from nidaan.events.service import publish
from nidaan.kit.db import session_scope
from tests.events.conftest import Cleanup
from tests.fixtures.objects import create_organisation

NATS_URL = os.environ.get("NIDAAN_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _nats_reachable() -> bool:
    host, _, port = NATS_URL.removeprefix("nats://").partition(":")
    try:
        with socket.create_connection((host, int(port or 4222)), timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _nats_reachable(), reason=f"no NATS server at {NATS_URL} (set NIDAAN_TEST_NATS_URL)"
)


@dataclasses.dataclass(frozen=True)
class SampleShipped(DomainEvent):
    name = "tests.sample_shipped"
    marker: str
    position: int
    patient_mobile: str


def _settings(settings: Settings, prefix: str) -> Settings:
    return settings.model_copy(update={"events_url": NATS_URL, "events_subject_prefix": prefix})


@pytest.fixture
async def stream(settings: Settings) -> AsyncIterator[Settings]:
    """Relay settings with a stream of their own, deleted afterwards; no event of an
    earlier test is left waiting."""
    async with session_scope(settings) as session:
        await session.execute(
            text("UPDATE event_outbox SET relayed_at = now() WHERE relayed_at IS NULL")
        )
    prefix = f"relaytest{uuid.uuid4().hex[:10]}"
    relay_settings = _settings(settings, prefix)
    yield relay_settings
    sink = await NatsSink.connect(NATS_URL, prefix)
    try:
        await sink.jetstream.delete_stream(sink.stream)
    finally:
        await sink.close()


async def _publish_events(
    settings: Settings, cleanup: Cleanup, count: int
) -> tuple[uuid.UUID, str, list[uuid.UUID]]:
    marker = uuid.uuid4().hex
    ids = []
    async with session_scope(settings) as session:
        organisation = await create_organisation(session)
        cleanup.organisation_ids.append(organisation.id)
    for position in range(count):  # one transaction each, as a lab day writes them
        async with session_scope(settings) as session:
            ids.append(
                await publish(
                    session,
                    SampleShipped(
                        organisation_id=organisation.id,
                        marker=marker,
                        position=position,
                        patient_mobile="9812345678",
                    ),
                )
            )
    return organisation.id, marker, ids


async def _stored(settings: Settings, organisation_id: uuid.UUID) -> list[dict]:
    """Every message JetStream holds for the organisation, in stream order."""
    sink = await NatsSink.connect(NATS_URL, settings.events_subject_prefix)
    try:
        info = await sink.jetstream.stream_info(sink.stream)
        messages = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await sink.jetstream.get_msg(sink.stream, seq)
            if message.subject.startswith(f"{settings.events_subject_prefix}.{organisation_id}."):
                messages.append(
                    {
                        "subject": message.subject,
                        "msg_id": (message.headers or {}).get("Nats-Msg-Id"),
                        **json.loads(message.data),
                    }
                )
        return messages
    finally:
        await sink.close()


async def test_events_reach_jetstream_in_order_once_without_personal_data(
    stream: Settings, cleanup: Cleanup
) -> None:
    organisation_id, marker, ids = await _publish_events(stream, cleanup, 5)
    sink = await NatsSink.connect(NATS_URL, stream.events_subject_prefix)
    try:
        assert await drain(stream, sink) == 5
        assert await drain(stream, sink) == 0  # nothing waits any more
    finally:
        await sink.close()

    messages = await _stored(stream, organisation_id)
    assert [m["id"] for m in messages] == [str(i) for i in ids]
    assert [m["data"]["position"] for m in messages] == list(range(5))
    first = messages[0]
    assert first["msg_id"] == first["id"]
    assert first["subject"] == (
        f"{stream.events_subject_prefix}.{organisation_id}.tests.sample_shipped"
    )
    assert first["type"] == "tests.sample_shipped"
    assert first["version"] == 1
    assert first["organisation_id"] == str(organisation_id)
    assert first["data"]["marker"] == marker
    # Personal data stays in the database unless a subscriber is configured for it.
    assert "patient_mobile" not in first["data"]
    assert "9812345678" not in json.dumps(messages)


class FlakySink:
    """A real NATS sink that fails at chosen publishes: before sending (a broker outage) or
    after the broker stored it (the acknowledgement lost, or the relay crashing)."""

    def __init__(self, inner: NatsSink, fail_before: set[int], fail_after: set[int]) -> None:
        self.inner = inner
        self.calls = 0
        self.fail_before = fail_before
        self.fail_after = fail_after

    async def publish(self, subject: str, key: str, message_id: str, body: bytes) -> None:
        self.calls += 1
        if self.calls in self.fail_before:
            raise ConnectionError("broker unreachable")
        await self.inner.publish(subject, key, message_id, body)
        if self.calls in self.fail_after:
            raise TimeoutError("acknowledgement lost")

    async def close(self) -> None:
        await self.inner.close()


@hypothesis_settings(
    max_examples=8,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fail_before=st.sets(st.integers(1, 14), max_size=4),
    fail_after=st.sets(st.integers(1, 14), max_size=4),
    restart_every_round=st.booleans(),
)
async def test_outages_crashes_and_restarts_lose_nothing_and_keep_order(
    stream: Settings,
    cleanup: Cleanup,
    fail_before: set[int],
    fail_after: set[int],
    restart_every_round: bool,
) -> None:
    organisation_id, _, ids = await _publish_events(stream, cleanup, 6)
    sink: FlakySink | None = None
    rounds = 0
    while True:
        rounds += 1
        assert rounds < 40, "the relay made no progress"
        if sink is None:
            inner = await NatsSink.connect(NATS_URL, stream.events_subject_prefix)
            sink = FlakySink(inner, fail_before, fail_after - fail_before)
        result = await relay_round(stream, sink)
        if restart_every_round:  # the relay process restarts after each round
            calls = sink.calls
            await sink.close()
            sink = None
            fail_before = {c - calls for c in fail_before if c > calls}
            fail_after = {c - calls for c in fail_after if c > calls}
        if not result.failed and result.published == 0:
            break
    if sink is not None:
        await sink.close()

    messages = await _stored(stream, organisation_id)
    # Each event exactly once in the stream (JetStream drops the re-publishes by id), in
    # the order the events were written.
    assert [m["id"] for m in messages] == [str(i) for i in ids]
    async with session_scope(stream) as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM event_outbox WHERE organisation_id = :org "
                "AND relayed_at IS NULL"
            ),
            {"org": organisation_id},
        )
    assert waiting == 0


async def test_a_second_relay_waits_while_one_works(stream: Settings, cleanup: Cleanup) -> None:
    await _publish_events(stream, cleanup, 2)
    sink = await NatsSink.connect(NATS_URL, stream.events_subject_prefix)
    try:
        async with session_scope(stream) as holder:
            await holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RELAY_LOCK})
            result = await relay_round(stream, sink)
            assert result.locked_out
            assert result.published == 0
        assert await drain(stream, sink) == 2
    finally:
        await sink.close()


KAFKA_URL = os.environ.get("NIDAAN_TEST_KAFKA_URL")


@pytest.mark.skipif(not KAFKA_URL, reason="no Kafka broker (set NIDAAN_TEST_KAFKA_URL=kafka://..)")
async def test_events_reach_kafka_keyed_by_organisation(
    settings: Settings, cleanup: Cleanup
) -> None:
    from aiokafka import AIOKafkaConsumer

    from nidaan.events.relay import open_sink

    async with session_scope(settings) as session:
        await session.execute(
            text("UPDATE event_outbox SET relayed_at = now() WHERE relayed_at IS NULL")
        )
    prefix = f"relaytest{uuid.uuid4().hex[:10]}"
    kafka = settings.model_copy(update={"events_url": KAFKA_URL, "events_subject_prefix": prefix})
    organisation_id, _, ids = await _publish_events(kafka, cleanup, 3)
    sink = await open_sink(kafka)
    try:
        assert await drain(kafka, sink) == 3
    finally:
        await sink.close()
    consumer = AIOKafkaConsumer(
        f"{prefix}.events",
        bootstrap_servers=(KAFKA_URL or "").removeprefix("kafka://"),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        records = await consumer.getmany(timeout_ms=10000, max_records=10)
    finally:
        await consumer.stop()
    received = [json.loads(r.value) for batch in records.values() for r in batch]
    assert [m["id"] for m in received] == [str(i) for i in ids]
    assert all(r.key == str(organisation_id).encode() for b in records.values() for r in b)
