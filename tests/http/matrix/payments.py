"""Role matrix of the payments endpoints. Gateways are not enabled in this lab, so creating
a link or QR is a 409 for those allowed (the flows are tested in tests/payments); payment ids
are a counter payment's."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.billing.counter import counter_service
from nidaan.billing.schemas import CounterPaymentCreate, InvoiceCreate, TenderIn
from nidaan.billing.service import billing_service
from nidaan.tenancy.models import Organisation
from tests.fixtures.billing import create_billing_world
from tests.fixtures.orders import system_principal
from tests.http.matrix.base import Case

A, B, F, U = Role.ADMIN, Role.BILLING, Role.FRONT_DESK, Role.AUDITOR
CASHIERS = frozenset({A, B, F})
READERS = frozenset({A, B, F, U})
MANAGERS = frozenset({A, B})
REVIEWERS = frozenset({A, B, U})

CASES = [
    Case(
        "POST", "/api/v1/invoices/{invoice_id}/payment-link", CASHIERS, body={}, ok_statuses=(409,)
    ),
    Case("POST", "/api/v1/invoices/{invoice_id}/upi-qr", CASHIERS, ok_statuses=(409,)),
    Case("GET", "/api/v1/invoices/{invoice_id}/payment-requests", READERS),
    Case("GET", "/api/v1/invoices/{invoice_id}/payments", READERS),
    Case("GET", "/api/v1/payments/reconciliation", REVIEWERS),
    Case("POST", "/api/v1/payments/reconciliation", MANAGERS),
    Case("GET", "/api/v1/payments", REVIEWERS),
    Case("GET", "/api/v1/payments/{payment_id}", READERS),
    Case(
        "POST",
        "/api/v1/payments/{payment_id}/refunds",
        MANAGERS,
        body={"amount": "1", "reason": "Matrix"},
    ),
    Case("GET", "/api/v1/payments/{payment_id}/refunds", READERS),
    Case("POST", "/api/v1/payments/{payment_id}/verify", MANAGERS, ok_statuses=(422,)),
    Case("POST", "/api/v1/payments/{payment_id}/capture", MANAGERS, ok_statuses=(409,)),
    Case(
        "POST",
        "/api/v1/payments/{payment_id}/apply",
        frozenset({A}),
        body={"note": "Looks right"},
        ok_statuses=(409,),
    ),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    world = await create_billing_world(session, organisation, with_users=False)
    caller = system_principal(organisation, roles=("billing",))
    invoice = await billing_service.create_order_invoice(
        session, caller, InvoiceCreate(order_id=(await world.order("HBA1C")).id)
    )
    detail, _ = await counter_service.take_counter_payment(
        session,
        caller,
        invoice.id,
        CounterPaymentCreate(tenders=[TenderIn(method="cash", amount=Decimal("100"))]),
    )
    return {"invoice_id": str(invoice.id), "payment_id": str(detail.payments[0].id)}
