"""Role matrix of the e-invoice endpoints. An e-invoice row is stored directly for the
invoice, so asking again answers 200 with it, the reads answer 200, and cancelling is a 409
(no IRP is configured in this process; the flows are tested in tests/einvoice)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.billing.schemas import InvoiceCreate
from nidaan.billing.service import billing_service
from nidaan.einvoice.models import EInvoice
from nidaan.kit.time import utcnow
from nidaan.tenancy.models import Organisation
from tests.fixtures.billing import LAB_GSTIN, create_billing_world
from tests.fixtures.orders import system_principal
from tests.http.matrix.base import Case

A, B, U = Role.ADMIN, Role.BILLING, Role.AUDITOR
ISSUERS = frozenset({A, B})
READERS = frozenset({A, B, U})

CASES = [
    Case("GET", "/api/v1/einvoice/settings", READERS),
    Case("PUT", "/api/v1/einvoice/settings", frozenset({A}), body={"trade_name": "Matrix {n}"}),
    Case("POST", "/api/v1/invoices/{invoice_id}/einvoice", ISSUERS),
    Case(
        "POST",
        "/api/v1/invoices/{invoice_id}/einvoice/cancel",
        ISSUERS,
        body={"reason": "2", "remark": "Matrix"},
        ok_statuses=(409,),
    ),
    Case("GET", "/api/v1/invoices/{invoice_id}/einvoice", READERS),
    Case("GET", "/api/v1/invoices/{invoice_id}/einvoice/qr.png", READERS),
    Case("GET", "/api/v1/invoices/{invoice_id}/einvoice/exchanges", READERS),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    world = await create_billing_world(session, organisation, with_users=False)
    caller = system_principal(organisation, roles=("billing",))
    other = await billing_service.create_order_invoice(
        session, caller, InvoiceCreate(order_id=(await world.order("GLU")).id)
    )
    session.add(
        EInvoice(
            organisation_id=organisation.id,
            invoice_id=other.id,
            doc_type="INV",
            doc_no=other.number,
            doc_date=date.today(),
            seller_gstin=LAB_GSTIN,
            buyer_gstin="29AAACA1234B1ZE",
            total=other.grand_total,
            status="generated",
            payload_json="{}",
            irn="0" * 64,
            ack_no="112610000000001",
            ack_at=utcnow(),
            signed_qr_code="matrix.signed.qr",
            attempts=1,
        )
    )
    await session.flush()
    return {"invoice_id": str(other.id)}
