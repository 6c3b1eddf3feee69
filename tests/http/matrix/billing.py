"""Role matrix of the billing endpoints (settings, rate lists, clients, invoices, counter
payments, receipts)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.billing.accounts import client_accounts
from nidaan.billing.configuration import billing_configuration
from nidaan.billing.counter import counter_service
from nidaan.billing.schemas import (
    ClientCreate,
    CounterPaymentCreate,
    InvoiceCreate,
    RateListCreate,
    TenderIn,
)
from nidaan.billing.service import billing_service, today_in_india
from nidaan.tenancy.models import Organisation
from tests.fixtures.billing import create_billing_world
from tests.fixtures.orders import system_principal
from tests.http.matrix.base import Case

A, B, F, U, P = Role.ADMIN, Role.BILLING, Role.FRONT_DESK, Role.AUDITOR, Role.PHLEBOTOMIST
ADMIN = frozenset({A})
MANAGERS = frozenset({A, B})
CASHIERS = frozenset({A, B, F})
READERS = frozenset({A, B, F, U})
SETTINGS_READERS = frozenset({A, B, U})
COLLECTORS = frozenset({A, B, F, P})

CASES = [
    Case("GET", "/api/v1/billing/settings", SETTINGS_READERS),
    Case("PUT", "/api/v1/billing/settings", ADMIN, body={"round_to_rupee": True}),
    Case("GET", "/api/v1/billing/branches/{branch_id}", MANAGERS),
    # 404 when the branch has no UPI payee: a normal answer past the role check.
    Case(
        "GET", "/api/v1/billing/branches/{branch_id}/upi-payee", COLLECTORS, ok_statuses=(200, 404)
    ),
    Case("PUT", "/api/v1/billing/branches/{branch_id}", ADMIN, body={"upi_vpa": "lab@okaxis"}),
    Case("GET", "/api/v1/billing/items", READERS),
    Case(
        "POST",
        "/api/v1/billing/items",
        MANAGERS,
        body={"code": "C{n}", "name": "Courier", "price": "50"},
    ),
    Case("GET", "/api/v1/rate-lists", READERS),
    Case(
        "POST",
        "/api/v1/rate-lists",
        MANAGERS,
        body={"code": "R{n}", "name": "List", "kind": "client"},
    ),
    Case("GET", "/api/v1/rate-lists/{rate_list_id}", READERS),
    Case("PATCH", "/api/v1/rate-lists/{rate_list_id}", MANAGERS, body={"name": "Renamed"}),
    Case("GET", "/api/v1/billing-clients", READERS),
    Case(
        "POST",
        "/api/v1/billing-clients",
        MANAGERS,
        body={"code": "C{n}", "name": "Hospital", "kind": "hospital"},
    ),
    Case("GET", "/api/v1/billing-clients/{client_id}", READERS),
    Case("PATCH", "/api/v1/billing-clients/{client_id}", MANAGERS, body={"name": "Renamed"}),
    Case(
        "POST",
        "/api/v1/billing-clients/{client_id}/orders",
        CASHIERS,
        body={"order_id": "{account_order_id}"},
    ),
    Case("GET", "/api/v1/billing-clients/{client_id}/statement", SETTINGS_READERS),
    Case("POST", "/api/v1/invoices", CASHIERS, body={"order_id": "{free_order_id}"}),
    Case(
        "POST",
        "/api/v1/invoices/consolidated",
        MANAGERS,
        body={"client_id": "{client_id}", "month": "{month}", "branch_id": "{branch_id}"},
    ),
    Case("GET", "/api/v1/invoices", READERS),
    Case("GET", "/api/v1/invoices/{invoice_id}", READERS),
    Case("GET", "/api/v1/invoices/{invoice_id}/pdf", READERS),
    # The invoice is paid in part: deciding a discount or cancelling is a 409 for those
    # allowed (the flows themselves are tested in tests/billing).
    Case(
        "POST",
        "/api/v1/invoices/{invoice_id}/discount-decision",
        ADMIN,
        body={"approve": True},
        ok_statuses=(409,),
    ),
    Case(
        "POST",
        "/api/v1/invoices/{invoice_id}/cancel",
        MANAGERS,
        body={"reason": "Wrong test"},
        ok_statuses=(409,),
    ),
    Case(
        "POST",
        "/api/v1/invoices/{invoice_id}/debit-notes",
        MANAGERS,
        body={
            "reason": "Courier charge missed",
            "lines": [{"description": "Report courier", "unit_price": "50.00"}],
        },
    ),
    Case(
        "POST",
        "/api/v1/invoices/{invoice_id}/payments",
        CASHIERS,
        body={"tenders": [{"method": "cash", "amount": "10"}]},
    ),
    Case("GET", "/api/v1/invoices/{invoice_id}/receipts", READERS),
    Case("GET", "/api/v1/invoices/{invoice_id}/upi-qr/counter", COLLECTORS),
    Case("GET", "/api/v1/receipts/{receipt_id}", READERS),
    Case("GET", "/api/v1/receipts/{receipt_id}/pdf", READERS),
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
    rate_list = await billing_configuration.create_rate_list(
        session, caller, RateListCreate(code="RL", name="List", kind="client")
    )
    monthly = await billing_configuration.create_client(
        session, caller, ClientCreate(code="MONTHLY", name="Hospital", kind="hospital")
    )
    await client_accounts.add_client_order(
        session, caller, monthly.id, (await world.order("LIPID")).id
    )
    return {
        "branch_id": str(world.lab.id),
        "invoice_id": str(invoice.id),
        "receipt_id": str(detail.receipt.id),
        "rate_list_id": str(rate_list.id),
        "client_id": str(monthly.id),
        "account_order_id": str((await world.order("GLU")).id),
        "free_order_id": str((await world.order("TSH")).id),
        "month": today_in_india().strftime("%Y-%m"),
    }
