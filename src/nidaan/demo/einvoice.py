"""Demo e-invoicing: the demo lab reports its B2B invoices to the IRP simulator mounted at
``/simulators/irp`` (any API user is accepted there). The B2B invoice to Acme Software is made
by the billing seed; generating and cancelling its IRN is left to the person trying the demo
(docs/einvoice.md)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.models import User
from nidaan.auth.principal import Principal
from nidaan.einvoice.schemas import EInvoiceSettingsUpdate
from nidaan.einvoice.service import einvoice_service
from nidaan.tenancy.models import Organisation

DEMO_IRP_USER = "demo_irp_user"
DEMO_IRP_PASSWORD = "nidaan-demo-irp"  # the simulator accepts any password


async def seed_einvoice(session: AsyncSession, organisation: Organisation) -> list[str]:
    """Enable e-invoicing once (nothing changes when it already is)."""
    row = await einvoice_service.settings_row(session, organisation.id)
    user = await session.scalar(
        select(User).where(User.organisation_id == organisation.id, User.roles.any("admin"))
    )
    if row.enabled or user is None:
        return []
    admin = Principal(
        kind="user",
        id=user.id,
        organisation_id=organisation.id,
        roles=frozenset({"admin"}),
        label=user.email,
    )
    await einvoice_service.update_settings(
        session,
        admin,
        EInvoiceSettingsUpdate(
            enabled=True,
            trade_name="Demo Diagnostics",
            location="Pune",
            irp_username=DEMO_IRP_USER,
            irp_password=DEMO_IRP_PASSWORD,
        ),
    )
    return ["e-invoicing (IRP simulator)"]
