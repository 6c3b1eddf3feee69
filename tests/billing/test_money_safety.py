"""Money safety is enforced by the database, whatever code writes the rows: an invoice is never
paid beyond its total, never refunded beyond what was paid, and each money effect applies
once. Random sequences of payments, refunds and replays keep every invariant."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.billing import ledger
from nidaan.billing.counter import counter_service
from nidaan.billing.enums import LedgerKind
from nidaan.billing.errors import InvoiceNotPayable, Overpayment, OverRefund
from nidaan.billing.models import Invoice
from nidaan.billing.schemas import InvoiceCreate
from nidaan.billing.service import billing_service
from nidaan.tenancy.models import Organisation
from tests.fixtures.billing import BillingWorld, create_billing_world
from tests.fixtures.orders import system_principal

D = Decimal


@pytest.fixture
async def world(session: AsyncSession, organisation: Organisation) -> BillingWorld:
    return await create_billing_world(session, organisation)


async def make_invoice(world: BillingWorld, session: AsyncSession, *codes: str) -> Invoice:
    order = await world.order(*codes)
    return await billing_service.create_order_invoice(
        session, system_principal(world.organisation), InvoiceCreate(order_id=order.id)
    )


async def raw_entry(
    session: AsyncSession, invoice: Invoice, kind: str, amount: str, key: str
) -> None:
    """A ledger row written with plain SQL (no service code involved)."""
    async with session.begin_nested():
        await session.execute(
            text(
                "INSERT INTO billing_ledger (id, organisation_id, invoice_id, kind, amount, "
                "effect_key) VALUES (:id, :org, :invoice, :kind, :amount, :key)"
            ),
            {
                "id": uuid.uuid4(),
                "org": invoice.organisation_id,
                "invoice": invoice.id,
                "kind": kind,
                "amount": D(amount),
                "key": key,
            },
        )


async def test_plain_sql_cannot_overpay_or_over_refund(
    world: BillingWorld, session: AsyncSession
) -> None:
    invoice = await make_invoice(world, session, "TSH")  # 450
    await raw_entry(session, invoice, "payment", "450", "a")
    with pytest.raises(IntegrityError, match="never_overpaid"):
        await raw_entry(session, invoice, "payment", "0.01", "b")
    await raw_entry(session, invoice, "refund", "450", "c")
    with pytest.raises(IntegrityError, match="refund_within_paid"):
        await raw_entry(session, invoice, "refund", "0.01", "d")
    with pytest.raises(IntegrityError, match="billing_ledger_organisation_id_effect_key"):
        await raw_entry(session, invoice, "payment", "1", "a")
    await session.refresh(invoice)
    assert (invoice.amount_paid, invoice.amount_refunded, invoice.payment_status) == (
        D("450.00"),
        D("450.00"),
        "refunded",
    )


async def test_ledger_rows_cannot_be_changed_or_deleted(
    world: BillingWorld, session: AsyncSession
) -> None:
    invoice = await make_invoice(world, session, "TSH")
    await raw_entry(session, invoice, "payment", "100", "k")
    for statement in (
        "UPDATE billing_ledger SET amount = 1 WHERE effect_key = 'k'",
        "DELETE FROM billing_ledger WHERE effect_key = 'k'",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with session.begin_nested():
                await session.execute(text(statement))


async def test_cancelled_invoice_takes_no_payment(
    world: BillingWorld, session: AsyncSession
) -> None:
    invoice = await make_invoice(world, session, "TSH")
    await billing_service.cancel(session, system_principal(world.organisation), invoice.id, "x")
    with pytest.raises(InvoiceNotPayable):
        await ledger.apply(
            session,
            organisation_id=invoice.organisation_id,
            invoice_id=invoice.id,
            kind=LedgerKind.PAYMENT,
            amount=D("1"),
            effect_key="late",
        )


async def test_refunds_never_exceed_their_payment(
    world: BillingWorld, session: AsyncSession
) -> None:
    """The refunds trigger counts pending and processed refunds against the payment."""
    invoice = await make_invoice(world, session, "TSH")
    caller = system_principal(world.organisation)
    payment, _ = await counter_service.record_payment(
        session, caller, order_id=invoice.order_id, amount="300", method="cash"
    )

    async def refund(amount: str, status: str = "pending") -> uuid.UUID:
        refund_id = uuid.uuid4()
        async with session.begin_nested():
            await session.execute(
                text(
                    "INSERT INTO refunds (id, organisation_id, invoice_id, counter_payment_id, "
                    "amount, reason, status) VALUES (:id, :org, :inv, :pay, :amount, 'x', :st)"
                ),
                {
                    "id": refund_id,
                    "org": invoice.organisation_id,
                    "inv": invoice.id,
                    "pay": payment.id,
                    "amount": D(amount),
                    "st": status,
                },
            )
        return refund_id

    first = await refund("200")
    with pytest.raises(IntegrityError, match="would exceed the payment"):
        await refund("100.01")
    # A failed refund gives its amount back; a failed one cannot come back to life.
    async with session.begin_nested():
        await session.execute(
            text("UPDATE refunds SET status = 'failed' WHERE id = :id"), {"id": first}
        )
    await refund("300", "processed")
    with pytest.raises(IntegrityError, match="stays failed"):
        async with session.begin_nested():
            await session.execute(
                text("UPDATE refunds SET status = 'processed' WHERE id = :id"), {"id": first}
            )


operations = st.lists(
    st.tuples(
        st.sampled_from(["payment", "refund", "refund_reversal"]),
        st.integers(min_value=1, max_value=60000),  # paise
        st.integers(min_value=0, max_value=9),  # effect key: repeats are replays
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
async def test_random_effects_keep_the_invariants(
    world: BillingWorld, session: AsyncSession, ops: list[tuple[str, int, int]]
) -> None:
    invoice = await make_invoice(world, session, "TSH")  # 450.00
    paid = refunded = D("0")
    applied: set[str] = set()
    for kind, paise, key_number in ops:
        amount = D(paise) / 100
        key = f"{invoice.id}:{kind}:{key_number}"
        fits = {
            "payment": paid - refunded + amount <= invoice.grand_total,
            "refund": refunded + amount <= paid,
            # A reversal puts money back on the invoice: it too may not overpay it.
            "refund_reversal": refunded - amount >= 0
            and paid - (refunded - amount) <= invoice.grand_total,
        }[kind]
        try:
            done = await ledger.apply(
                session,
                organisation_id=invoice.organisation_id,
                invoice_id=invoice.id,
                kind=LedgerKind(kind),
                amount=amount,
                effect_key=key,
            )
        except (Overpayment, OverRefund):
            assert not fits
            assert key not in applied
            continue
        except IntegrityError:
            # A reversal below zero trips the invoice's amount_refunded >= 0 check.
            assert kind == "refund_reversal"
            assert not fits
            continue
        assert done == (key not in applied)
        if done:
            assert fits
            applied.add(key)
            if kind == "payment":
                paid += amount
            elif kind == "refund":
                refunded += amount
            else:
                refunded -= amount
        await session.refresh(invoice)
        assert (invoice.amount_paid, invoice.amount_refunded) == (paid, refunded)
        assert D("0") <= invoice.amount_paid - invoice.amount_refunded <= invoice.grand_total
        assert invoice.balance_due == invoice.grand_total - (paid - refunded)
