"""The last signature releases the result, its ordered test, tube and order in one statement:
the same audit entries and events as row by row, and no completion missed when the order's
last two results are verified at the same moment."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.events.models import OutboxEvent
from nidaan.orders.enums import OrderStatus, OrderTestStatus
from nidaan.orders.models import Order, OrderTest
from nidaan.results.models import Result, ResultVerification
from nidaan.results.service import results_service
from nidaan.samples.enums import SampleStatus
from nidaan.samples.models import Sample
from tests.audit.conftest import CommittingSession
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import enter_result, principal_of
from tests.results.conftest import Lab, adult_woman, enter, make_lab, numeric_test, place_order
from tests.results.conftest import verify as verify_call


async def _audit(session: AsyncSession, entity_id: object) -> list[tuple[str, dict]]:
    rows = await session.execute(
        select(AuditLog.action, AuditLog.changes)
        .where(AuditLog.entity_id == str(entity_id))
        .order_by(AuditLog.id)
    )
    return [(action, changes) for action, changes in rows]


async def _verified_events(session: AsyncSession, organisation_id: uuid.UUID) -> list[dict]:
    rows = await session.scalars(
        select(OutboxEvent.payload)
        .where(
            OutboxEvent.organisation_id == organisation_id,
            OutboxEvent.name == "results.verified",
        )
        .order_by(OutboxEvent.occurred_at, OutboxEvent.id)
    )
    return list(rows)


async def test_last_signature_releases_test_tube_and_order_with_their_audit_entries(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    glu = await numeric_test(session, lab, "GLU")
    urea = await numeric_test(session, lab, "UREA")
    placed = await place_order(session, lab, await adult_woman(session, lab), [glu, urea])
    first = await enter(client, lab, placed["GLU"], "96")
    second = await enter(client, lab, placed["UREA"], "28")
    order_version = placed.order.version

    assert (await verify_call(client, lab, first["id"]))["status"] == "verified"
    # Not the last: the order and tube stay as they are.
    await session.refresh(placed.order)
    await session.refresh(placed.sample)
    assert placed.order.status == OrderStatus.OPEN
    assert placed.sample.status == SampleStatus.IN_PROCESS
    sample_version = placed.sample.version

    released = await verify_call(client, lab, second["id"])
    assert released["status"] == "verified"
    assert released["verified_by_id"] == str(lab.users["path"].id)
    assert [(v["user_id"], v["level"]) for v in released["verifications"]] == [
        (str(lab.users["path"].id), 1)
    ]

    order = await session.get(Order, placed.order.id, populate_existing=True)
    sample = await session.get(Sample, placed.sample.id, populate_existing=True)
    order_test = await session.get(OrderTest, placed["UREA"].id, populate_existing=True)
    result = await session.get(Result, uuid.UUID(second["id"]), populate_existing=True)
    assert order is not None
    assert sample is not None
    assert order_test is not None
    assert result is not None
    assert (order.status, order.version) == (OrderStatus.COMPLETED, order_version + 1)
    assert order.completed_at is not None
    assert (sample.status, sample.version) == (SampleStatus.COMPLETED, sample_version + 1)
    assert sample.completed_at is not None
    assert order_test.status == OrderTestStatus.VERIFIED
    assert (result.status, result.verified_by_id) == ("verified", lab.users["path"].id)
    signatures = list(
        await session.scalars(
            select(ResultVerification.level).where(ResultVerification.result_id == result.id)
        )
    )
    assert signatures == [1]

    verified = await _audit(session, result.id)
    assert [action for action, _ in verified] == ["result.entered", "result.verified"]
    assert verified[1][1]["before"]["status"] == "entered"
    assert verified[1][1]["after"]["status"] == "verified"
    assert verified[1][1]["after"]["verification_level"] == 1
    test_entries = await _audit(session, order_test.id)
    assert [action for action, _ in test_entries] == [
        "order_test.status_changed",
        "order_test.status_changed",
    ]
    assert test_entries[1][1] == {"before": {"status": "resulted"}, "after": {"status": "verified"}}
    order_entries = await _audit(session, order.id)
    assert [action for action, _ in order_entries] == ["order.completed"]
    assert order_entries[0][1]["before"]["status"] == "open"
    assert order_entries[0][1]["after"]["status"] == "completed"
    assert order_entries[0][1]["after"]["previous_status"] == "open"
    sample_entries = await _audit(session, sample.id)
    assert [action for action, _ in sample_entries] == [
        "sample.processing_started",
        "sample.completed",
    ]
    assert sample_entries[1][1]["after"]["status"] == "completed"

    events = await _verified_events(session, lab.organisation.id)
    # The first verification completed nothing; the second its department and the order.
    assert [(e["order_id"], e["department"]) for e in events] == [
        (str(order.id), glu.department),
        (str(order.id), None),
    ]


async def test_the_last_two_results_verified_at_once_complete_the_order_once(
    committing_session: CommittingSession,
) -> None:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await make_lab(session, organisation)
        tests = [await numeric_test(session, lab, code) for code in ("GLU", "UREA", "CREA")]
        placed = await place_order(session, lab, await adult_woman(session, lab), tests)
        results = [await enter_result(session, lab, placed[t.code], "1") for t in tests]
        await results_service.verify(session, principal_of(lab.users["path"]), results[0].id)
    start = asyncio.Event()

    async def verify(result_id: uuid.UUID, who: str) -> None:
        async with committing_session() as session:
            await start.wait()
            await results_service.verify(session, principal_of(lab.users[who]), result_id)

    tasks = [
        asyncio.create_task(verify(results[1].id, "path")),
        asyncio.create_task(verify(results[2].id, "path2")),
    ]
    await asyncio.sleep(0.05)
    start.set()
    await asyncio.gather(*tasks)

    async with committing_session() as session:
        order = await session.get(Order, placed.order.id)
        sample = await session.get(Sample, placed.sample.id)
        assert order is not None
        assert sample is not None
        assert order.status == OrderStatus.COMPLETED
        assert sample.status == SampleStatus.COMPLETED
        assert [a for a, _ in await _audit(session, order.id)] == ["order.completed"]
        assert [a for a, _ in await _audit(session, sample.id)] == [
            "sample.processing_started",
            "sample.completed",
        ]
        events = await _verified_events(session, organisation.id)
        assert [e["department"] for e in events] == [tests[0].department, None]
