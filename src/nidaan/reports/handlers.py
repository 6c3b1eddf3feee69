"""Reports react to verified results: render and store the order's report (in the job)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.events.registry import subscriber
from nidaan.reports.errors import ReportNotReady
from nidaan.reports.events import ProvisionalReportRequested
from nidaan.reports.service import logger, reports_service
from nidaan.results.events import ResultsVerified


@subscriber(ResultsVerified, name="reports.render_on_results_verified")
async def render_on_results_verified(session: AsyncSession, event: ResultsVerified) -> None:
    """Issue the first report when the whole order is verified, a new version on corrections.

    Runs inside ``events.deliver``, whose (event id, subscriber) claim commits with the report
    row: a delivery that already committed is skipped, and one that failed left nothing. The
    service also refuses to issue a version with the same content as the current one.
    """
    await reports_service.on_results_verified(
        session,
        event.organisation_id,
        event.order_id,
        department=event.department,
        amended=event.amended,
        reason=event.reason,
    )


@subscriber(ProvisionalReportRequested, name="reports.render_provisional")
async def render_provisional(session: AsyncSession, event: ProvisionalReportRequested) -> None:
    """Issue the requested provisional version (final instead if everything got verified)."""
    try:
        await reports_service.render_and_store(session, event.organisation_id, event.order_id)
    except ReportNotReady:
        logger.info("Order %s has no verified results; no provisional report", event.order_id)
