"""Orders: placed offline (append with a client id; the server makes samples and
accessions), administrative fields last-writer-wins, clinical notes guarded, cancellation a
checked transition."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from nidaan.audit.service import audit_service
from nidaan.auth.enums import Role
from nidaan.catalog.models import CatalogTest
from nidaan.orders.enums import OrderStatus, OrderTestStatus, Priority
from nidaan.orders.models import Order, OrderTest
from nidaan.orders.schemas import OrderCreate
from nidaan.orders.service import orders_service
from nidaan.sync.context import OpContext
from nidaan.sync.entities.common import iso, refused, validate
from nidaan.sync.registry import EntityHandler, MergeClass, OpStatus, Outcome, Rejected, register

DESK = frozenset({Role.ADMIN, Role.FRONT_DESK})
EDITABLE = ("referring_doctor", "priority", "clinical_notes")


def _order_fields(order: Order) -> dict[str, Any]:
    return {name: getattr(order, name) for name in EDITABLE}


class OrderHandler(EntityHandler):
    name = "order"
    model = Order
    fields = {
        "referring_doctor": MergeClass.LWW,
        "priority": MergeClass.LWW,
        "clinical_notes": MergeClass.GUARDED,
    }
    operations = {"create": DESK, "update": DESK, "transition": DESK}
    # The pull view lists the order's tests with their status.
    children = {OrderTest: "order_id"}

    def scope(self, session: Session, row: Any) -> list[uuid.UUID]:
        return [row.branch_id]

    def is_deleted(self, row: Any) -> bool:
        return False

    async def serialize_many(self, session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
        tests: dict[uuid.UUID, list[dict[str, Any]]] = {row.id: [] for row in rows}
        found = await session.execute(
            select(OrderTest, CatalogTest.code)
            .join(CatalogTest, CatalogTest.id == OrderTest.test_id)
            .where(OrderTest.order_id.in_(list(tests)))
            .order_by(OrderTest.order_id, OrderTest.id)
            .execution_options(populate_existing=True)
        )
        for order_test, code in found:
            tests[order_test.order_id].append(
                {
                    "id": str(order_test.id),
                    "test_code": code,
                    "sample_id": str(order_test.sample_id) if order_test.sample_id else None,
                    "status": order_test.status,
                }
            )
        return [
            {
                "id": str(row.id),
                "order_number": row.order_number,
                "branch_id": str(row.branch_id),
                "patient_id": str(row.patient_id),
                "priority": row.priority,
                "status": row.status,
                "referring_doctor": row.referring_doctor,
                "clinical_notes": row.clinical_notes,
                "tests": tests[row.id],
                "version": row.version,
                "created_at": iso(row.created_at),
                "completed_at": iso(row.completed_at),
            }
            for row in rows
        ]

    def normalize_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        values = dict(data)
        if "priority" in values and values["priority"] not in set(Priority):
            raise Rejected(f"priority must be one of {sorted(Priority)}")
        for name in ("referring_doctor", "clinical_notes"):
            if name in values:
                text = (values[name] or "").strip()
                limit = 200 if name == "referring_doctor" else 2000
                if len(text) > limit:
                    raise Rejected(f"{name} is longer than {limit} characters")
                values[name] = text or None
        return values

    async def apply_fields(self, ctx: OpContext, row: Any, values: dict[str, Any]) -> None:
        if row.status == OrderStatus.CANCELLED:
            raise Rejected("the order is cancelled")
        before = _order_fields(row)
        for name, value in values.items():
            setattr(row, name, value)
        await ctx.session.flush()
        await audit_service.record(
            ctx.session,
            organisation_id=ctx.principal.organisation_id,
            actor=ctx.principal.actor,
            action="order.updated",
            entity_type="order",
            entity_id=row.id,
            before=before,
            after=_order_fields(row),
        )

    async def create(self, ctx: OpContext) -> Outcome:
        data = validate(OrderCreate, {**ctx.data, "id": str(ctx.op.entity_id)})
        _, created = await refused(
            lambda: orders_service.create_or_replay(ctx.session, ctx.principal, data)
        )
        return Outcome.applied() if created else Outcome(OpStatus.DUPLICATE)

    async def transition(self, ctx: OpContext, row: Any) -> Outcome:
        target = ctx.data.get("to")
        if target != OrderStatus.CANCELLED:
            raise Rejected("an order can only be moved to 'cancelled' by sync")
        reason = str(ctx.data.get("reason") or "").strip()
        if not reason:
            raise Rejected("cancelling an order needs a reason")
        if row.status == OrderStatus.CANCELLED:
            return Outcome.applied()
        tests = list(
            await ctx.session.scalars(select(OrderTest).where(OrderTest.order_id == row.id))
        )
        if any(t.status in (OrderTestStatus.RESULTED, OrderTestStatus.VERIFIED) for t in tests):
            raise Rejected("this order has results; cancel single tests in the lab instead")
        pending = [t for t in tests if t.status == OrderTestStatus.ACTIVE]
        for order_test in pending:
            await refused(
                lambda t=order_test: orders_service.cancel_test(
                    ctx.session, ctx.principal, row.id, t.id, reason[:300]
                )
            )
        return Outcome.applied()


handler = register(OrderHandler())
