"""Autoverification reacts to entered results and to a lifted QC block."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.autoverify.service import autoverify_service
from nidaan.events.registry import subscriber
from nidaan.results.events import ResultsEntered, VerificationGateLifted


@subscriber(ResultsEntered, name="autoverify.evaluate_entered_results")
async def evaluate_entered_results(session: AsyncSession, event: ResultsEntered) -> None:
    """Decide about the entered results (verify by the system, stop or hold); once per
    event (the delivery claim commits with the decisions)."""
    await autoverify_service.evaluate(session, event.organisation_id, event.result_ids)


@subscriber(VerificationGateLifted, name="autoverify.evaluate_after_gate_lifted")
async def evaluate_after_gate_lifted(session: AsyncSession, event: VerificationGateLifted) -> None:
    """A QC block was lifted: decide about the results it had blocked."""
    await autoverify_service.after_gate_lifted(
        session,
        event.organisation_id,
        event.instrument_id,
        event.test_id,
        event.since,
        event.lifted_at,
    )
