"""Release holds: the seam through which other modules keep a report from the patient.

Reports never import billing (core modules do not import edge modules). Instead a module
that needs a report held places a named hold on the order (``report_release.hold``) and lifts
it later (``report_release.lift``). The report is still rendered when the results are
verified and staff can read it; it is *released* only when no hold is left, and then
``report.released`` is published (once per report version). Whatever delivers reports to
patients (notifications, ABDM) subscribes to ``report.released``, or asks ``is_held``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.events.service import publish
from nidaan.kit.time import utcnow
from nidaan.reports.events import ReportReleased
from nidaan.reports.models import Report, ReportReleaseHold


@dataclass(frozen=True)
class Hold:
    holder: str
    reason: str
    since: datetime


class ReportRelease:
    async def hold(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        order_id: uuid.UUID,
        *,
        holder: str,
        reason: str,
        actor: AuditActor,
    ) -> bool:
        """Place (or keep) ``holder``'s hold on the order's report; True if newly placed."""
        placed = await session.scalar(
            insert(ReportReleaseHold)
            .values(
                organisation_id=organisation_id,
                order_id=order_id,
                holder=holder,
                reason=reason[:300],
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["order_id", "holder"])
            .returning(ReportReleaseHold.order_id)
        )
        if placed is not None:
            await audit_service.record(
                session,
                organisation_id=organisation_id,
                actor=actor,
                action="report.release_held",
                entity_type="order",
                entity_id=order_id,
                after={"holder": holder, "reason": reason},
            )
        return placed is not None

    async def lift(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        order_id: uuid.UUID,
        *,
        holder: str,
        actor: AuditActor,
    ) -> bool:
        """Lift ``holder``'s hold; releases the current report if it was the last one."""
        lifted = await session.scalar(
            delete(ReportReleaseHold)
            .where(
                ReportReleaseHold.organisation_id == organisation_id,
                ReportReleaseHold.order_id == order_id,
                ReportReleaseHold.holder == holder,
            )
            .returning(ReportReleaseHold.reason)
        )
        if lifted is None:
            return False
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=actor,
            action="report.release_hold_lifted",
            entity_type="order",
            entity_id=order_id,
            before={"holder": holder, "reason": lifted},
        )
        if not await self.is_held(session, organisation_id, order_id):
            report = await session.scalar(
                select(Report).where(
                    Report.organisation_id == organisation_id,
                    Report.order_id == order_id,
                    Report.is_current.is_(True),
                )
            )
            if report is not None:
                await publish(
                    session,
                    ReportReleased(
                        organisation_id=organisation_id,
                        order_id=order_id,
                        report_id=report.id,
                        report_version=report.report_version,
                    ),
                )
        return True

    async def holds(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_id: uuid.UUID
    ) -> list[Hold]:
        rows = await session.scalars(
            select(ReportReleaseHold)
            .where(
                ReportReleaseHold.organisation_id == organisation_id,
                ReportReleaseHold.order_id == order_id,
            )
            .order_by(ReportReleaseHold.created_at)
        )
        return [Hold(r.holder, r.reason, r.created_at) for r in rows]

    async def is_held(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_id: uuid.UUID
    ) -> bool:
        found = await session.scalar(
            select(ReportReleaseHold.holder)
            .where(
                ReportReleaseHold.organisation_id == organisation_id,
                ReportReleaseHold.order_id == order_id,
            )
            .limit(1)
        )
        return found is not None


report_release = ReportRelease()
