"""Change capture: commit order, savepoints, and children shown inside a parent's view."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from nidaan.kit.db import commit, get_sessionmaker
from nidaan.orders.models import OrderTest
from nidaan.patients.models import Patient
from nidaan.sync.models import SyncChange
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import create_organisation


async def _changes(settings: Any, organisation_id: Any) -> list[SyncChange]:
    async with get_sessionmaker(settings)() as session:
        rows = await session.scalars(
            select(SyncChange)
            .where(SyncChange.organisation_id == organisation_id)
            .order_by(SyncChange.seq)
        )
        return list(rows)


async def _organisation(settings: Any) -> Organisation:
    async with get_sessionmaker(settings)() as session:
        organisation = await create_organisation(session)
        await commit(session)
        return organisation


async def test_rolled_back_savepoint_keeps_earlier_changes(settings) -> None:  # type: ignore[no-untyped-def]
    organisation = await _organisation(settings)
    async with get_sessionmaker(settings)() as session:
        kept = await create_patient(session, organisation, full_name="Kept Patient")
        savepoint = await session.begin_nested()
        await create_patient(session, organisation, full_name="Gone Patient")
        await savepoint.rollback()
        await commit(session)
    changes = await _changes(settings, organisation.id)
    assert [(c.entity, c.entity_id) for c in changes] == [("patient", kept.id)]
    assert changes[0].seq == 1


async def test_sequence_is_commit_order_under_concurrent_writers(settings) -> None:  # type: ignore[no-untyped-def]
    """Writers that start in one order and commit in another still number in commit order,
    so a reader that has seen seq N never later finds a row below N."""
    organisation = await _organisation(settings)
    first_may_commit = asyncio.Event()
    order: list[str] = []

    async def writer(name: str, wait: asyncio.Event | None) -> None:
        async with get_sessionmaker(settings)() as session:
            await create_patient(session, organisation, full_name=name)
            if wait is not None:
                await wait.wait()
            await commit(session)
            order.append(name)

    slow = asyncio.create_task(writer("Slow Starter", first_may_commit))
    await asyncio.sleep(0.05)
    await writer("Quick Finisher", None)
    first_may_commit.set()
    await slow
    changes = await _changes(settings, organisation.id)
    async with get_sessionmaker(settings)() as session:
        names = {
            p.id: p.full_name
            for p in await session.scalars(
                select(Patient).where(Patient.organisation_id == organisation.id)
            )
        }
    assert [names[c.entity_id] for c in changes] == order
    assert [c.seq for c in changes] == [1, 2]


async def test_a_changed_order_test_is_a_change_of_its_order(settings) -> None:  # type: ignore[no-untyped-def]
    from nidaan.tenancy.enums import BranchKind
    from tests.fixtures.lab import create_catalog_test
    from tests.fixtures.objects import create_branch
    from tests.fixtures.results import Lab, place_order

    organisation = await _organisation(settings)
    async with get_sessionmaker(settings)() as session:
        lab = Lab(
            organisation,
            await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB),
        )
        test = await create_catalog_test(session, organisation)
        patient = await create_patient(session, organisation)
        placed = await place_order(session, lab, patient, [test])
        await commit(session)
    before = len(await _changes(settings, organisation.id))
    async with get_sessionmaker(settings)() as session:
        order_test = await session.scalar(
            select(OrderTest).where(OrderTest.order_id == placed.order.id)
        )
        assert order_test is not None
        order_test.status = "cancelled"
        await commit(session)
    changes = await _changes(settings, organisation.id)
    assert len(changes) == before + 1
    assert (changes[-1].entity, changes[-1].entity_id) == ("order", placed.order.id)
    assert "order_tests" in changes[-1].changed_fields


async def test_set_based_status_updates_are_captured(settings) -> None:  # type: ignore[no-untyped-def]
    """Analyzer batches move order tests and samples on with one UPDATE each; sync still sees
    the order and the sample change, and versions move on as an ORM flush would move them."""
    from nidaan.orders.service import orders_service
    from nidaan.samples.models import Sample
    from nidaan.samples.service import samples_service
    from tests.fixtures.lab import create_catalog_test
    from tests.fixtures.results import make_lab, place_order, principal_of

    organisation = await _organisation(settings)
    async with get_sessionmaker(settings)() as session:
        lab = await make_lab(session, organisation)
        test = await create_catalog_test(session, organisation)
        patient = await create_patient(session, organisation)
        placed = await place_order(session, lab, patient, [test])
        await commit(session)
    before = len(await _changes(settings, organisation.id))
    async with get_sessionmaker(settings)() as session:
        order_test = await session.scalar(
            select(OrderTest).where(OrderTest.order_id == placed.order.id).with_for_update()
        )
        sample = await session.get(Sample, placed.sample.id)
        assert order_test is not None
        assert sample is not None
        version = order_test.version
        sample.status = "received"
        await session.flush()
        sample_version = sample.version
        entries = await orders_service.mark_resulted(session, [order_test])
        entries += await samples_service.start_processing_locked(
            session, principal_of(lab.users["admin"]), [sample]
        )
        assert [e.action for e in entries] == [
            "order_test.status_changed",
            "sample.processing_started",
        ]
        assert (order_test.status, order_test.version) == ("resulted", version + 1)
        assert (sample.status, sample.version) == ("in_process", sample_version + 1)
        await commit(session)
    changes = await _changes(settings, organisation.id)
    changed = {(c.entity, c.entity_id) for c in changes[before:]}
    assert changed == {("order", placed.order.id), ("sample", placed.sample.id)}
    async with get_sessionmaker(settings)() as session:
        stored = await session.get(OrderTest, order_test.id)
        assert stored is not None
        assert (stored.status, stored.version) == ("resulted", version + 1)
