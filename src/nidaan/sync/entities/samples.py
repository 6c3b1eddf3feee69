"""Samples: collection, receipt and rejection as checked transitions of the sample state
machine. Samples themselves are made by the server when an order is placed."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from nidaan.auth.enums import Role
from nidaan.orders.service import orders_service
from nidaan.samples.enums import RejectionReason, SampleStatus
from nidaan.samples.models import Sample
from nidaan.samples.service import samples_service
from nidaan.sync.context import OpContext
from nidaan.sync.entities.common import iso, op_time, op_uuid, refused
from nidaan.sync.registry import EntityHandler, OpStatus, Outcome, Rejected, register

HANDLERS = frozenset(
    {Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST, Role.TECHNICIAN, Role.PATHOLOGIST}
)
# Which roles may move a sample to which state (the service checks the transition itself).
TRANSITION_ROLES = {
    SampleStatus.COLLECTED: frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST}),
    SampleStatus.RECEIVED: frozenset({Role.ADMIN, Role.TECHNICIAN}),
    SampleStatus.REJECTED: frozenset({Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST}),
}


class SampleHandler(EntityHandler):
    name = "sample"
    model = Sample
    operations = {"transition": HANDLERS}

    def scope(self, session: Session, row: Any) -> list[uuid.UUID]:
        keys = [row.branch_id]
        if row.collected_at_branch_id and row.collected_at_branch_id != row.branch_id:
            keys.append(row.collected_at_branch_id)
        return keys

    async def serialize_many(self, session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "id": str(row.id),
                "order_id": str(row.order_id),
                "branch_id": str(row.branch_id),
                "accession": row.accession,
                "specimen_type": row.specimen_type,
                "container": row.container,
                "status": row.status,
                "collected_at": iso(row.collected_at),
                "collected_at_branch_id": (
                    str(row.collected_at_branch_id) if row.collected_at_branch_id else None
                ),
                "received_at": iso(row.received_at),
                "rejected_at": iso(row.rejected_at),
                "rejection_reason": row.rejection_reason,
                "recollection_id": str(row.recollection_id) if row.recollection_id else None,
                "label_alias": row.label_alias,
                "version": row.version,
            }
            for row in rows
        ]

    async def transition(self, ctx: OpContext, row: Any) -> Outcome:
        target = ctx.data.get("to")
        roles = TRANSITION_ROLES.get(target)  # type: ignore[call-overload]
        if roles is None:
            raise Rejected(f"samples can be moved to {sorted(TRANSITION_ROLES)} by sync")
        if not ctx.principal.has_any_role(*roles):
            raise Rejected(f"your role may not mark a sample {target}")
        if row.status == target:
            # A second device recording the same step: the step is done, nothing changes.
            return Outcome(OpStatus.APPLIED, reason=f"already {target}")
        session, caller = ctx.session, ctx.principal
        if target == SampleStatus.COLLECTED:
            branch = op_uuid(ctx.data.get("branch_id"), "branch_id")
            when = op_time(ctx.data.get("collected_at"), "collected_at")
            await refused(
                lambda: samples_service.collect(
                    session, caller, row.id, branch_id=branch, collected_at=when
                )
            )
        elif target == SampleStatus.RECEIVED:
            branch = op_uuid(ctx.data.get("branch_id"), "branch_id")
            await refused(
                lambda: samples_service.receive(session, caller, row.id, branch_id=branch)
            )
        else:
            reason = ctx.data.get("reason")
            if reason not in set(RejectionReason):
                raise Rejected(f"reason must be one of {sorted(RejectionReason)}")
            note = ctx.data.get("note")
            await refused(
                lambda: orders_service.reject_sample(session, caller, row.accession, reason, note)
            )
        return Outcome.applied()


handler = register(SampleHandler())
