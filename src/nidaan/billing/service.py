"""Recording counter payments against an order, audited, idempotent by client id."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.billing.events import PaymentCaptured
from nidaan.billing.models import CounterPayment
from nidaan.events.service import publish
from nidaan.kit.db import get_in_organisation
from nidaan.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from nidaan.kit.time import utcnow
from nidaan.orders.models import Order

METHODS = frozenset({"cash", "upi", "card", "cheque"})
MAX_AMOUNT = Decimal("10000000")
CLOCK_SKEW_SECONDS = 600


class PaymentIdConflict(Conflict):
    code = "payment_id_conflict"


def snapshot(payment: CounterPayment) -> dict[str, Any]:
    return {
        "order_id": str(payment.order_id),
        "branch_id": str(payment.branch_id),
        "amount": str(payment.amount),
        "method": payment.method,
        "reference": payment.reference,
        "received_at": payment.received_at.isoformat(),
    }


def _amount(raw: Any) -> Decimal:
    try:
        amount = Decimal(str(raw)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise InvalidInput("amount must be a number of rupees.", field="amount") from None
    if amount == 0 or abs(amount) > MAX_AMOUNT:
        raise InvalidInput("amount must be non-zero and under 1 crore.", field="amount")
    return amount


class BillingService:
    async def record_payment(
        self,
        session: AsyncSession,
        caller: Principal,
        *,
        order_id: uuid.UUID,
        amount: Any,
        method: str,
        reference: str | None = None,
        received_at: datetime | None = None,
        payment_id: uuid.UUID | None = None,
    ) -> tuple[CounterPayment, bool]:
        """Record a payment; returns (payment, created). A known id with the same content is a
        replay (created False); with other content it is refused."""
        org = caller.organisation_id
        value = _amount(amount)
        method = (method or "").strip().lower()
        if method not in METHODS:
            raise InvalidInput(f"method must be one of {sorted(METHODS)}.", field="method")
        if payment_id is not None:
            existing = await session.get(CounterPayment, payment_id)
            if existing is not None:
                if existing.organisation_id == org and (
                    existing.order_id,
                    existing.amount,
                    existing.method,
                ) == (order_id, value, method):
                    return existing, False
                raise PaymentIdConflict("This payment id is already used for another payment.")
        order = await get_in_organisation(session, Order, order_id, org)
        if order is None:
            raise NotFound("No such order.")
        if not caller.may_use_branch(order.branch_id):
            raise Forbidden("You do not work at this order's branch.")
        now = utcnow()
        when = received_at or now
        if when.tzinfo is None:
            raise InvalidInput("received_at needs a time zone.", field="received_at")
        if (when - now).total_seconds() > CLOCK_SKEW_SECONDS:
            raise InvalidInput("received_at is in the future.", field="received_at")
        payment = CounterPayment(
            organisation_id=org,
            order_id=order.id,
            branch_id=order.branch_id,
            amount=value,
            method=method,
            reference=(reference or "").strip() or None,
            received_at=when,
            received_by_id=caller.id if caller.kind == "user" else None,
        )
        if payment_id is not None:
            payment.id = payment_id
        session.add(payment)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=org,
            actor=caller.actor,
            action="payment.recorded",
            entity_type="payment",
            entity_id=payment.id,
            after=snapshot(payment),
        )
        if payment.amount > 0:
            await publish(
                session,
                PaymentCaptured(
                    organisation_id=org,
                    payment_id=payment.id,
                    order_id=order.id,
                    amount=payment.amount,
                    method=payment.method,
                ),
            )
        return payment, True

    async def payments_for_order(
        self, session: AsyncSession, caller: Principal, order_id: uuid.UUID
    ) -> list[CounterPayment]:
        rows = await session.scalars(
            select(CounterPayment)
            .where(
                CounterPayment.organisation_id == caller.organisation_id,
                CounterPayment.order_id == order_id,
            )
            .order_by(CounterPayment.received_at, CounterPayment.id)
        )
        return list(rows)


billing_service = BillingService()
