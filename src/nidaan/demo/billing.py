"""Demo billing: the demo lab's GST identity, counter UPI payees, gateways (served by the
built-in simulators in demo mode), two B2B clients, a service item, and an invoice for each
of the demo day's orders — one paid at the counter, the others waiting for a payment link."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.models import User
from nidaan.auth.principal import Principal
from nidaan.billing.configuration import billing_configuration
from nidaan.billing.counter import counter_service
from nidaan.billing.domain import gstin_check_character
from nidaan.billing.models import BillingClient
from nidaan.billing.schemas import (
    BillingItemCreate,
    BillingSettingsUpdate,
    BranchBillingUpdate,
    ClientCreate,
    CounterPaymentCreate,
    ExtraItemIn,
    InvoiceCreate,
    TenderIn,
)
from nidaan.billing.service import billing_service
from nidaan.orders.models import Order
from nidaan.tenancy.models import Branch, Organisation


def demo_gstin(state: str, pan: str) -> str:
    first14 = f"{state}{pan}1Z"
    return first14 + gstin_check_character(first14)


async def seed_billing(session: AsyncSession, organisation: Organisation) -> list[str]:
    """Set up billing once (nothing changes when the lab already has a GSTIN)."""
    settings = await billing_configuration.settings_for(session, organisation.id)
    user = await session.scalar(
        select(User).where(User.organisation_id == organisation.id, User.roles.any("admin"))
    )
    if settings.gstin or user is None:
        return []
    admin = Principal(
        kind="user",
        id=user.id,
        organisation_id=organisation.id,
        roles=frozenset({"admin", "billing"}),
        label=user.email,
    )
    created: list[str] = []
    await billing_configuration.update_settings(
        session,
        admin,
        BillingSettingsUpdate(
            legal_name="Demo Diagnostics Private Limited",
            gstin=demo_gstin("27", "AADCD1234E"),
            address="12 FC Road, Shivajinagar, Pune",
            pincode="411005",
            home_collection_charge=Decimal("150"),
            home_collection_free_above=Decimal("1500"),
            enabled_gateways=["razorpay", "stripe", "payu"],  # type: ignore[list-item]
            default_gateway="razorpay",  # type: ignore[arg-type]
        ),
    )
    created.append("billing settings (GSTIN, gateways)")
    branches = list(
        await session.scalars(select(Branch).where(Branch.organisation_id == organisation.id))
    )
    for branch in branches:
        await billing_configuration.update_branch(
            session,
            admin,
            branch.id,
            BranchBillingUpdate(
                upi_vpa=f"demodiagnostics.{branch.code.lower()}@okaxis",
                upi_payee_name="Demo Diagnostics",
            ),
        )
    await billing_configuration.create_item(
        session,
        admin,
        BillingItemCreate(
            code="COURIER",
            name="Report courier",
            price=Decimal("60"),
            sac="996812",
            gst_treatment="taxable",  # type: ignore[arg-type]
            gst_rate=Decimal("18"),
        ),
    )
    await billing_configuration.create_client(
        session,
        admin,
        ClientCreate(
            code="RUBY",
            name="Ruby Hall Clinic",
            kind="hospital",  # type: ignore[arg-type]
            gstin=demo_gstin("27", "AABCR1234C"),
            address="40 Sassoon Road, Pune",
            pincode="411001",
            credit_limit=Decimal("50000"),
            billing_cycle="monthly",  # type: ignore[arg-type]
        ),
    )
    await billing_configuration.create_client(
        session,
        admin,
        ClientCreate(
            code="ACME",
            name="Acme Software Private Limited",
            kind="corporate",  # type: ignore[arg-type]
            gstin=demo_gstin("29", "AAACA1234B"),
            address="80 Outer Ring Road, Bengaluru",
            pincode="560103",
            credit_limit=Decimal("25000"),
            billing_cycle="per_order",  # type: ignore[arg-type]
        ),
    )
    created.append("billing clients RUBY (monthly) and ACME (Karnataka, per order)")
    orders = list(
        await session.scalars(
            select(Order).where(Order.organisation_id == organisation.id).order_by(Order.created_at)
        )
    )
    acme = await session.scalar(
        select(BillingClient).where(
            BillingClient.organisation_id == organisation.id, BillingClient.code == "ACME"
        )
    )
    for index, order in enumerate(orders):
        # The second order is billed to Acme (Karnataka) with a taxable courier line: a B2B
        # tax invoice that must be reported to the IRP (docs/einvoice.md).
        b2b = index == 1 and acme is not None
        invoice = await billing_service.create_order_invoice(
            session,
            admin,
            InvoiceCreate(
                order_id=order.id,
                client_id=acme.id if b2b and acme else None,
                extra_items=[ExtraItemIn(code="COURIER")] if b2b else [],
            ),
        )
        created.append(f"invoice {invoice.number}")
        if index == 0:
            await counter_service.take_counter_payment(
                session,
                admin,
                invoice.id,
                CounterPaymentCreate(
                    tenders=[TenderIn(method="cash", amount=invoice.grand_total)]  # type: ignore[call-arg]
                ),
            )
    return created
