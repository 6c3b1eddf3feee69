"""The money ledger: each money effect is one append-only row with a unique key.

``apply`` inserts the row in a savepoint with ``ON CONFLICT DO NOTHING``: the first call for
an effect key applies it (the trigger moves the invoice's amounts), every later call — a
duplicate webhook, a retried job, a replayed sync op — finds the key and changes nothing.
When the invoice's CHECK constraints refuse the row (it would overpay or over-refund, or
the invoice takes no payments), the savepoint rolls back and a billing error is raised.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.billing.enums import LedgerKind
from nidaan.billing.errors import InvoiceNotPayable, Overpayment, OverRefund
from nidaan.billing.models import LedgerEntry


def constraint_of(exc: IntegrityError) -> str:
    """The name of the constraint (or trigger-raised rule) that refused a statement."""
    diag = getattr(exc.orig, "diag", None)
    return str(getattr(diag, "constraint_name", "") or "")


async def apply(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    invoice_id: uuid.UUID,
    kind: LedgerKind,
    amount: Decimal,
    effect_key: str,
    counter_payment_id: uuid.UUID | None = None,
    gateway_payment_id: uuid.UUID | None = None,
    refund_id: uuid.UUID | None = None,
) -> bool:
    """Apply one money effect once; True when applied now, False when it already was."""
    statement = (
        insert(LedgerEntry)
        .values(
            organisation_id=organisation_id,
            invoice_id=invoice_id,
            kind=str(kind),
            amount=amount,
            effect_key=effect_key,
            counter_payment_id=counter_payment_id,
            gateway_payment_id=gateway_payment_id,
            refund_id=refund_id,
        )
        .on_conflict_do_nothing(index_elements=["organisation_id", "effect_key"])
        .returning(LedgerEntry.id)
    )
    try:
        async with session.begin_nested():
            inserted = await session.scalar(statement)
    except IntegrityError as exc:
        name = constraint_of(exc)
        if name.endswith("never_overpaid"):
            raise Overpayment(
                "This payment is more than the invoice's balance due.", amount=str(amount)
            ) from None
        if name.endswith("refund_within_paid"):
            raise OverRefund("This refund is more than was paid.", amount=str(amount)) from None
        if name == "invoice_accepts_payments":
            raise InvoiceNotPayable(
                "The invoice does not accept payments (cancelled or awaiting approval)."
            ) from None
        raise
    return inserted is not None
