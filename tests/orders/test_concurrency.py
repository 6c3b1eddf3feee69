"""Orders placed at the same moment at one branch get unique, consecutive accessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from nidaan.audit.service import audit_service
from nidaan.kit.time import utcnow
from nidaan.orders.models import Order
from nidaan.orders.schemas import OrderCreate
from nidaan.orders.service import orders_service
from nidaan.samples.domain import ist_day
from nidaan.samples.models import Sample
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Organisation
from tests.audit.conftest import CommittingSession, superuser_execute
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_branch, create_organisation
from tests.fixtures.orders import system_principal

ORDERS = 8

# Every table a committed order touches; rows go with their organisation afterwards.
TABLES = (
    "order_tests",
    "samples",
    "orders",
    "event_outbox",
    "catalog_tests",
    "patients",
    "sequences",
    "branches",
    "audit_log",
    "audit_chain_heads",
)


@pytest.fixture
async def committed_lab(
    committing_session: CommittingSession, superuser_conninfo: str
) -> AsyncIterator[tuple[Organisation, dict[str, object]]]:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        branch = await create_branch(session, organisation, code="LAB", kind=BranchKind.CENTRAL_LAB)
        blood = await create_catalog_test(
            session, organisation, code="HB", specimen_type="whole_blood", container="edta"
        )
        serum = await create_catalog_test(session, organisation, code="ALT")
        patient = await create_patient(session, organisation)
    yield organisation, {"branch": branch, "tests": [blood, serum], "patient": patient}
    org_id = str(organisation.id)
    await superuser_execute(
        superuser_conninfo,
        "DELETE FROM procrastinate_jobs WHERE task_name = 'events.deliver' AND args->>'event_id'"
        " IN (SELECT id::text FROM event_outbox WHERE organisation_id::text = %s)",
        params=(org_id,),
    )
    await superuser_execute(
        superuser_conninfo,
        *(f"DELETE FROM {table} WHERE organisation_id = %s" for table in TABLES),
        "DELETE FROM organisations WHERE id = %s",
        params=(org_id,),
    )


async def test_concurrent_orders_get_unique_consecutive_accessions(
    committing_session: CommittingSession, committed_lab: tuple[Organisation, dict]
) -> None:
    organisation, lab = committed_lab
    caller = system_principal(organisation, roles=("front_desk",))
    start = asyncio.Event()

    async def place() -> None:
        async with committing_session() as session:
            await start.wait()
            await orders_service.create(
                session,
                caller,
                OrderCreate(
                    patient_id=lab["patient"].id,  # type: ignore[attr-defined]
                    branch_id=lab["branch"].id,  # type: ignore[attr-defined]
                    items=[t.code for t in lab["tests"]],  # type: ignore[attr-defined]
                ),
            )

    tasks = [asyncio.create_task(place()) for _ in range(ORDERS)]
    await asyncio.sleep(0.05)
    start.set()
    await asyncio.gather(*tasks)

    day = f"{ist_day(utcnow()):%Y%m%d}"
    async with committing_session() as session:
        accessions = sorted(
            await session.scalars(
                select(Sample.accession).where(Sample.organisation_id == organisation.id)
            )
        )
        numbers = sorted(
            await session.scalars(
                select(Order.order_number).where(Order.organisation_id == organisation.id)
            )
        )
        report = await audit_service.verify(session, organisation.id)
    assert accessions == [f"LAB-{day}-{n:04d}" for n in range(1, 2 * ORDERS + 1)]
    assert numbers == [f"ORD-{day}-{n:04d}" for n in range(1, ORDERS + 1)]
    assert report.ok


async def test_rejections_and_new_orders_at_once_do_not_deadlock(
    committing_session: CommittingSession, committed_lab: tuple[Organisation, dict]
) -> None:
    """A rejection draws its recollection's accession before any audit entry, as order
    creation does, so the two never wait on each other's locks in opposite order."""
    organisation, lab = committed_lab
    desk = system_principal(organisation, roles=("front_desk",))
    technician = system_principal(organisation, roles=("technician",))

    def new_order() -> OrderCreate:
        return OrderCreate(
            patient_id=lab["patient"].id,  # type: ignore[attr-defined]
            branch_id=lab["branch"].id,  # type: ignore[attr-defined]
            items=[t.code for t in lab["tests"]],  # type: ignore[attr-defined]
        )

    async with committing_session() as session:
        existing = []
        for _ in range(ORDERS // 2):
            order = await orders_service.create(session, desk, new_order())
            detail = await orders_service.detail(session, desk, order.id)
            existing.append(detail.samples[0].accession)
    start = asyncio.Event()

    async def place() -> None:
        async with committing_session() as session:
            await start.wait()
            await orders_service.create(session, desk, new_order())

    async def reject(accession: str) -> None:
        async with committing_session() as session:
            await start.wait()
            await orders_service.reject_sample(session, technician, accession, "clotted")

    tasks = [asyncio.create_task(place()) for _ in range(ORDERS // 2)]
    tasks += [asyncio.create_task(reject(a)) for a in existing]
    await asyncio.sleep(0.05)
    start.set()
    await asyncio.gather(*tasks)

    day = f"{ist_day(utcnow()):%Y%m%d}"
    async with committing_session() as session:
        accessions = sorted(
            await session.scalars(
                select(Sample.accession).where(Sample.organisation_id == organisation.id)
            )
        )
        rejected = list(
            await session.scalars(
                select(Sample).where(
                    Sample.organisation_id == organisation.id, Sample.status == "rejected"
                )
            )
        )
    # Two tubes per order, plus one recollection per rejection.
    total = 2 * ORDERS + ORDERS // 2
    assert accessions == [f"LAB-{day}-{n:04d}" for n in range(1, total + 1)]
    assert sorted(s.accession for s in rejected) == sorted(existing)
    assert all(s.recollection_id is not None for s in rejected)
