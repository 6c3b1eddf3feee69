"""Quality control reacts to control results an analyzer sent (``integration``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.events.registry import subscriber
from nidaan.integration.events import ControlResultsReceived
from nidaan.qc.service import qc_service


@subscriber(ControlResultsReceived, name="qc.record_control_results")
async def record_control_results(session: AsyncSession, event: ControlResultsReceived) -> None:
    """Record each control result against its lot (Westgard, gate); unmatched ones are kept.
    Runs once per event (the delivery claim commits with the rows)."""
    await qc_service.record_from_instrument(
        session,
        event.organisation_id,
        event.instrument_id,
        event.message_id,
        event.received_at,
        event.controls,
    )
