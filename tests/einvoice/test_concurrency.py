"""Two requests for the same invoice's IRN at the same moment (a double click, a client retry
racing the first): real committing transactions on PostgreSQL. The unique e-invoice row and
its lock make the second wait and return the first's IRN; the IRP is asked once."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from nidaan.billing.configuration import billing_configuration
from nidaan.billing.schemas import BillingItemCreate, ClientCreate, ExtraItemIn, InvoiceCreate
from nidaan.billing.service import billing_service
from nidaan.einvoice.models import EInvoice, EInvoiceSettings
from nidaan.einvoice.service import einvoice_service
from tests.einvoice.conftest import ACME_GSTIN, IRP_PASSWORD, IRP_USER, Irp
from tests.fixtures.billing import create_billing_world
from tests.fixtures.objects import create_organisation
from tests.fixtures.orders import system_principal


async def test_simultaneous_requests_make_one_irn(committing_session: Any, irp: Irp) -> None:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        world = await create_billing_world(session, organisation, with_users=False)
        world.lab.code = "CL"
        caller = system_principal(organisation, roles=("admin", "billing"))
        await billing_configuration.create_item(
            session,
            caller,
            BillingItemCreate(
                code="COURIER",
                name="Courier",
                price=Decimal("118.50"),
                sac="996812",
                gst_treatment="taxable",  # type: ignore[arg-type]
                gst_rate=Decimal("18"),
            ),
        )
        client = await billing_configuration.create_client(
            session,
            caller,
            ClientCreate(
                code="ACME",
                name="Acme Software Private Limited",
                kind="corporate",  # type: ignore[arg-type]
                gstin=ACME_GSTIN,
                address="80 Outer Ring Road, Bengaluru",
                pincode="560103",
                billing_cycle="per_order",  # type: ignore[arg-type]
            ),
        )
        session.add(
            EInvoiceSettings(
                organisation_id=organisation.id,
                enabled=True,
                sandbox=False,
                thirty_day_limit=False,
                location="Pune",
                irp_username=IRP_USER,
                irp_password=IRP_PASSWORD,
            )
        )
        invoice = await billing_service.create_order_invoice(
            session,
            caller,
            InvoiceCreate(
                order_id=(await world.order("GLU")).id,
                client_id=client.id,
                extra_items=[ExtraItemIn(code="COURIER")],
            ),
        )

    async def ask() -> tuple[str | None, bool]:
        async with committing_session() as session:
            row, asked = await einvoice_service.generate(session, caller, invoice.id)
            return row.irn, asked

    results = await asyncio.gather(*(ask() for _ in range(4)))
    irns = {irn for irn, _ in results}
    assert len(irns) == 1
    assert None not in irns
    assert sorted(asked for _, asked in results) == [False, False, False, True]
    assert irp.simulator.calls.count("generate") == 1
    async with committing_session() as session:
        count = await session.scalar(
            select(func.count()).select_from(EInvoice).where(EInvoice.invoice_id == invoice.id)
        )
    assert count == 1
