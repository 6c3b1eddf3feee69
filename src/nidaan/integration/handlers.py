"""Integration reacts to received samples (queue the order download for batch analyzers) and
to finalised reports (queue the results for the hospital that ordered them)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.events.registry import subscriber
from nidaan.integration.hospital import hospital_service
from nidaan.integration.service import integration_service
from nidaan.reports.events import ReportFinalized
from nidaan.samples.events import SampleReceived


@subscriber(SampleReceived, name="integration.order_download_on_sample_received")
async def order_download_on_sample_received(session: AsyncSession, event: SampleReceived) -> None:
    """Store one pending outbound order download per eligible instrument; the interfaces
    runtime sends it. Idempotent per (instrument, sample), so a redelivery queues nothing."""
    await integration_service.queue_order_downloads(
        session, event.organisation_id, event.sample_id, branch_id=event.branch_id
    )


@subscriber(ReportFinalized, name="integration.hospital_results_on_report_finalized")
async def hospital_results_on_report_finalized(
    session: AsyncSession, event: ReportFinalized
) -> None:
    """Queue the verified results (ORU^R01) for the hospital that ordered them, if any; the
    interfaces runtime delivers them. Idempotent per report, so a redelivery queues nothing."""
    await hospital_service.queue_results(
        session, event.organisation_id, event.order_id, event.report_id, amended=event.amended
    )
