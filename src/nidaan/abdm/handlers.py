"""ABDM reacts to finalised reports: each reported order becomes a care context, linked to
the patient's ABHA when there is one (HIP-initiated linking)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm.linking import linking_service
from nidaan.events.registry import subscriber
from nidaan.reports.events import ReportFinalized


@subscriber(ReportFinalized, name="abdm.care_context_on_report_finalized")
async def care_context_on_report_finalized(session: AsyncSession, event: ReportFinalized) -> None:
    """Idempotent: the care context is upserted per order; linking skips linked ones."""
    await linking_service.note_report(
        session, event.organisation_id, event.order_id, event.report_id
    )
