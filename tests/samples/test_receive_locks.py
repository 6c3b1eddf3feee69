"""Receiving a tube on a manifest locks the manifest before the tube, as dispatch does, so a
receipt and a dispatch at the same moment cannot deadlock (one statement takes both locks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, text

from nidaan.orders.schemas import OrderCreate
from nidaan.orders.service import orders_service
from nidaan.samples.enums import ManifestStatus, SampleStatus
from nidaan.samples.models import Manifest, Sample
from nidaan.samples.schemas import ManifestCreate
from nidaan.samples.service import samples_service
from nidaan.tenancy.enums import BranchKind
from tests.audit.conftest import CommittingSession, superuser_execute
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_branch, create_organisation
from tests.fixtures.orders import system_principal

TABLES = (
    "order_tests",
    "samples",
    "manifests",
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
async def dispatched(
    committing_session: CommittingSession, superuser_conninfo: str
) -> AsyncIterator[dict[str, Any]]:
    """A committed tube collected at a centre and dispatched on a manifest to the lab."""
    async with committing_session() as session:
        organisation = await create_organisation(session)
        centre = await create_branch(session, organisation, kind=BranchKind.COLLECTION_CENTRE)
        lab = await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB)
        test = await create_catalog_test(session, organisation, code="ALT")
        patient = await create_patient(session, organisation)
        caller = system_principal(organisation)
        order = await orders_service.create(
            session,
            caller,
            OrderCreate(patient_id=patient.id, branch_id=centre.id, items=[test.code]),
        )
        (sample,) = await samples_service.for_orders(session, organisation.id, [order.id])
        await samples_service.collect(session, caller, sample.accession)
        manifest, _ = await samples_service.create_manifest(
            session,
            caller,
            ManifestCreate(
                from_branch_id=centre.id, to_branch_id=lab.id, accessions=[sample.accession]
            ),
        )
        await samples_service.dispatch_manifest(session, caller, manifest.id)
    yield {
        "caller": caller,
        "lab": lab.id,
        "accession": sample.accession,
        "sample": sample.id,
        "manifest": manifest.id,
    }
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


async def test_receipt_waits_for_the_manifest_before_locking_the_tube(
    committing_session: CommittingSession, dispatched: dict[str, Any]
) -> None:
    async with committing_session() as dispatcher:
        # Another transaction holds the manifest (as dispatching or settling it does).
        await dispatcher.execute(
            select(Manifest.id).where(Manifest.id == dispatched["manifest"]).with_for_update()
        )

        async def receive() -> Sample:
            async with committing_session() as session:
                return await samples_service.receive(
                    session,
                    dispatched["caller"],
                    dispatched["accession"],
                    branch_id=dispatched["lab"],
                )

        receipt = asyncio.create_task(receive())
        await asyncio.sleep(0.5)
        assert not receipt.done()
        # The waiting receipt holds no lock on the tube yet: it is free to lock right now.
        async with committing_session() as other:
            locked = await other.scalar(
                text("SELECT id FROM samples WHERE id = :id FOR UPDATE NOWAIT"),
                {"id": dispatched["sample"]},
            )
            assert locked == dispatched["sample"]
            await other.rollback()
    received = await asyncio.wait_for(receipt, timeout=30)

    assert received.status == SampleStatus.RECEIVED
    assert received.received_at_branch_id == dispatched["lab"]
    async with committing_session() as session:
        manifest = await session.get(Manifest, dispatched["manifest"])
        assert manifest is not None
        assert manifest.status == ManifestStatus.RECEIVED
