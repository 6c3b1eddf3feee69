"""Payments react to billing: a cancelled invoice's open links and QR codes are cancelled at
the gateway, so nobody can pay a bill that no longer exists."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.billing.events import InvoiceCancelled
from nidaan.events.registry import subscriber
from nidaan.payments.service import payments_service


@subscriber(InvoiceCancelled, name="payments.cancel_requests_of_cancelled_invoice")
async def cancel_requests_of_cancelled_invoice(
    session: AsyncSession, event: InvoiceCancelled
) -> None:
    """Best effort: a link already paid at the gateway stays; its payment is then held."""
    await payments_service.cancel_open_requests(session, event.organisation_id, event.invoice_id)
