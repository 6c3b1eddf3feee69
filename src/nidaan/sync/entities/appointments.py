"""Home visits: the phlebotomist's phone moves a visit along its states offline (on the
way, arrived, patient not available, refused) and, at the door, ``collected``: one op that
creates the order under the phone's order id, collects every sample at the phone's time and
records the payment taken (cash or UPI) under the phone's payment id. A replay changes
nothing; a visit already in the target state is applied without change."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from nidaan.appointments.enums import VisitStatus
from nidaan.appointments.models import Appointment
from nidaan.appointments.schemas import CollectIn
from nidaan.appointments.service import appointments_service
from nidaan.appointments.views import appointment_views
from nidaan.auth.enums import Role
from nidaan.sync.context import OpContext
from nidaan.sync.entities.common import op_time, refused, validate
from nidaan.sync.registry import EntityHandler, OpStatus, Outcome, Rejected, register

ROAD = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST})
STEPS = frozenset(
    {VisitStatus.ON_THE_WAY, VisitStatus.ARRIVED, VisitStatus.NOT_AVAILABLE, VisitStatus.REFUSED}
)


class AppointmentHandler(EntityHandler):
    name = "appointment"
    model = Appointment
    operations = {"transition": ROAD, "bind_label": ROAD}

    def scope(self, session: Session, row: Any) -> list[uuid.UUID]:
        return [row.branch_id]

    async def serialize_many(self, session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
        return [view.model_dump(mode="json") for view in await appointment_views(session, rows)]

    async def transition(self, ctx: OpContext, row: Any) -> Outcome:
        target = ctx.data.get("to")
        if row.status == target:
            return Outcome(OpStatus.APPLIED, reason=f"already {target}")
        session, caller = ctx.session, ctx.principal
        if target == VisitStatus.COLLECTED:
            data = validate(
                CollectIn,
                {k: v for k, v in ctx.data.items() if k in ("order_id", "collected_at", "payment")},
            )
            await refused(lambda: appointments_service.collect(session, caller, row.id, data))
            return Outcome.applied()
        if target not in STEPS:
            raise Rejected(f"visits can be moved to {sorted([*STEPS, 'collected'])} by sync")
        at = op_time(ctx.data.get("at"), "at")
        reason = ctx.data.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise Rejected("reason must be text")
        await refused(
            lambda: appointments_service.advance(
                session, caller, row.id, str(target), at=at, reason=reason
            )
        )
        return Outcome.applied()

    async def operate(self, ctx: OpContext, row: Any) -> Outcome:
        if ctx.op.operation == "bind_label":
            return await self.bind_label(ctx, row)
        return await super().operate(ctx, row)

    async def bind_label(self, ctx: OpContext, row: Any) -> Outcome:
        """Scan to bind: ``{"sample": <id or accession>, "label": <barcode>}``, or from a
        phone that collected offline (no accessions yet) ``{"container": ..., "specimen_type":
        ..., "label": ...}`` naming the visit's tube; binding the same label again is applied
        without change, a label bound elsewhere is REJECTED."""
        data = ctx.data
        label, sample = data.get("label"), data.get("sample")
        container, specimen = data.get("container"), data.get("specimen_type")
        if not isinstance(label, str):
            raise Rejected("bind_label needs the label as text")
        if sample is None and container is None:
            raise Rejected("bind_label needs the sample, or the tube's container")
        if not all(v is None or isinstance(v, str) for v in (sample, container, specimen)):
            raise Rejected("sample, container and specimen_type are text")
        session, caller = ctx.session, ctx.principal
        await refused(
            lambda: appointments_service.bind_label(
                session,
                caller,
                row.id,
                sample,
                label,
                container=container,
                specimen_type=specimen,
            )
        )
        return Outcome.applied()


handler = register(AppointmentHandler())
