"""Results: entered offline as appends (point-of-care tests); a value edit is guarded by the
result version; a verified result is never changed by sync — it is amended in the lab."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from nidaan.auth.enums import Role
from nidaan.orders.models import Order, OrderTest
from nidaan.results.enums import ResultStatus
from nidaan.results.models import Result
from nidaan.results.service import results_service
from nidaan.sync.context import OpContext
from nidaan.sync.entities.common import iso, op_uuid, refused
from nidaan.sync.merge import field_meta, open_conflict
from nidaan.sync.registry import EntityHandler, MergeClass, OpStatus, Outcome, Rejected, register

LAB = frozenset({Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST})
IMMUTABLE = "verified results are never changed by sync; amend the result in the lab"


def _text(value: Any, name: str) -> str:
    if value is None or not str(value).strip():
        raise Rejected(f"a result needs {name}")
    return str(value).strip()


class ResultHandler(EntityHandler):
    name = "result"
    model = Result
    fields = {"value": MergeClass.GUARDED}
    columns = {"entered_value": "value"}
    operations = {"append": LAB, "update": LAB}
    version_attr = "result_version"

    def scope(self, session: Session, row: Any) -> list[uuid.UUID]:
        order = session.get(Order, row.order_id)
        return [order.branch_id] if order is not None else []

    async def serialize_many(self, session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "id": str(row.id),
                "order_test_id": str(row.order_test_id),
                "order_id": str(row.order_id),
                "sample_id": str(row.sample_id) if row.sample_id else None,
                "status": row.status,
                "value": row.entered_value,
                "unit": row.unit,
                "flag": row.flag,
                "result_version": row.result_version,
                "is_current": row.is_current,
                "entered_at": row.entered_at.isoformat(),
                "verified_at": iso(row.verified_at),
            }
            for row in rows
        ]

    def read_field(self, row: Any, name: str) -> Any:
        return row.entered_value if name == "value" else super().read_field(row, name)

    def normalize_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        values = dict(data)
        unit = values.pop("unit", None)
        if unit is not None:
            values.setdefault("value", None)
        if "value" in values:
            values["value"] = _text(values["value"], "value")
        return values

    async def apply_fields(self, ctx: OpContext, row: Any, values: dict[str, Any]) -> None:
        if row.status == ResultStatus.VERIFIED:
            raise Rejected(IMMUTABLE)
        await refused(
            lambda: results_service.enter(
                ctx.session,
                ctx.principal,
                row.order_test_id,
                values["value"],
                ctx.data.get("unit", row.entered_unit),
            )
        )

    async def before_update(self, ctx: OpContext, row: Any) -> None:
        if row.status == ResultStatus.VERIFIED:
            raise Rejected(IMMUTABLE)
        if not row.is_current:
            raise Rejected("this result was replaced by a correction; edit the current one")

    async def append(self, ctx: OpContext) -> Outcome:
        order_test_id = op_uuid(ctx.data.get("order_test_id"), "order_test_id")
        if order_test_id is None:
            raise Rejected("a result needs order_test_id")
        value = _text(ctx.data.get("value"), "value")
        # One device at a time per ordered test: two first results must not race.
        locked = await ctx.session.scalar(
            select(OrderTest.id)
            .where(
                OrderTest.id == order_test_id,
                OrderTest.organisation_id == ctx.principal.organisation_id,
            )
            .with_for_update()
        )
        if locked is None:
            raise Rejected("no such ordered test in your organisation")
        current = await ctx.session.scalar(
            select(Result).where(Result.order_test_id == order_test_id, Result.is_current)
        )
        if current is not None and current.id != ctx.op.entity_id:
            # Someone else already entered this test: two results for one test is a clinical
            # question for a person, not something to merge.
            if current.status == ResultStatus.VERIFIED:
                raise Rejected("this test already has a verified result; amend it in the lab")
            if current.entered_value == value:
                return Outcome(OpStatus.DUPLICATE, reason=f"same value as result {current.id}")
            stamp = (await field_meta(ctx, self, current.id)).get("value")
            await open_conflict(
                ctx, self, current, "value", current.entered_value, value, stamp, "CLINICAL_MANUAL"
            )
            return Outcome(OpStatus.CONFLICT, conflict_ids=list(ctx.conflicts))
        outcome = await refused(
            lambda: results_service.enter_with_outcome(
                ctx.session,
                ctx.principal,
                order_test_id,
                value,
                ctx.data.get("unit"),
                ctx.data.get("comment"),
                result_id=ctx.op.entity_id,
            )
        )
        return Outcome.applied() if outcome.created else Outcome(OpStatus.DUPLICATE)


handler = register(ResultHandler())
