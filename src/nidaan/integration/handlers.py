"""Integration reacts to received samples: queue the order download for batch analyzers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.events.registry import subscriber
from nidaan.integration.service import integration_service
from nidaan.samples.events import SampleReceived


@subscriber(SampleReceived, name="integration.order_download_on_sample_received")
async def order_download_on_sample_received(session: AsyncSession, event: SampleReceived) -> None:
    """Store one pending outbound order download per eligible instrument; the interfaces
    runtime sends it. Idempotent per (instrument, sample), so a redelivery queues nothing."""
    await integration_service.queue_order_downloads(
        session, event.organisation_id, event.sample_id, branch_id=event.branch_id
    )
