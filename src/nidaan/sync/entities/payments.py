"""Counter payments: append-only with a client id; a replay is a duplicate, never a second
payment."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from nidaan.auth.enums import Role
from nidaan.billing.counter import counter_service
from nidaan.billing.models import CounterPayment
from nidaan.sync.context import OpContext
from nidaan.sync.entities.common import op_time, op_uuid, refused
from nidaan.sync.registry import EntityHandler, OpStatus, Outcome, Rejected, register

CASHIERS = frozenset({Role.ADMIN, Role.BILLING, Role.FRONT_DESK})


class PaymentHandler(EntityHandler):
    name = "payment"
    model = CounterPayment
    operations = {"append": CASHIERS}
    version_attr = None

    def scope(self, session: Session, row: Any) -> list[uuid.UUID]:
        return [row.branch_id]

    async def serialize_many(self, session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "id": str(row.id),
                "order_id": str(row.order_id) if row.order_id else None,
                "branch_id": str(row.branch_id),
                "amount": str(row.amount),
                "method": row.method,
                "reference": row.reference,
                "received_at": row.received_at.isoformat(),
                "received_by_id": str(row.received_by_id) if row.received_by_id else None,
            }
            for row in rows
        ]

    async def append(self, ctx: OpContext) -> Outcome:
        order_id = op_uuid(ctx.data.get("order_id"), "order_id")
        if order_id is None:
            raise Rejected("a payment needs order_id")
        _, created = await refused(
            lambda: counter_service.record_payment(
                ctx.session,
                ctx.principal,
                order_id=order_id,
                amount=ctx.data.get("amount"),
                method=str(ctx.data.get("method") or ""),
                reference=ctx.data.get("reference"),
                received_at=op_time(ctx.data.get("received_at"), "received_at"),
                payment_id=ctx.op.entity_id,
            )
        )
        return Outcome.applied() if created else Outcome(OpStatus.DUPLICATE)


handler = register(PaymentHandler())
