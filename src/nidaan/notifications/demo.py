"""Demo lab: patients who agreed to WhatsApp (and e-mail), referring doctors' contacts, and
a policy that also tells doctors, so the demo day's report and critical value go out."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import ALL_ROLES
from nidaan.auth.principal import Principal
from nidaan.notifications.enums import Channel
from nidaan.notifications.models import NotificationConsent
from nidaan.notifications.service import notifications_service
from nidaan.patients.models import Patient
from nidaan.tenancy.models import Organisation

#: Demo patient -> channels they opted in to at registration.
CONSENTS = {
    "Sunita Devi Sharma": (Channel.WHATSAPP, Channel.EMAIL),
    "Rohan Mehta": (Channel.WHATSAPP, Channel.SMS),
    "Lakshmi Iyer": (Channel.WHATSAPP,),
    "Arjun Patil": (Channel.SMS,),
}
DOCTORS = (
    ("Dr. Anil Kulkarni", "9822098220", "anil.kulkarni@example.com", ["whatsapp", "email"]),
    ("Dr. Priya Nair", "9822198221", None, ["whatsapp"]),
)
NOTICE_VERSION = "demo-2026-11"


async def seed_demo_notifications(session: AsyncSession, organisation: Organisation) -> list[str]:
    """Record the demo consents, doctors and policy once; returns what it created."""
    done = await session.scalar(
        select(func.count())
        .select_from(NotificationConsent)
        .where(NotificationConsent.organisation_id == organisation.id)
    )
    if done:
        return []
    caller = Principal(
        kind="system",
        id=organisation.id,
        organisation_id=organisation.id,
        roles=ALL_ROLES,
        label="demo seed",
    )
    created: list[str] = []
    patients = await session.scalars(
        select(Patient).where(
            Patient.organisation_id == organisation.id, Patient.full_name.in_(list(CONSENTS))
        )
    )
    for patient in patients:
        for channel in CONSENTS[patient.full_name]:
            await notifications_service.set_consent(
                session,
                caller,
                patient.id,
                channel,
                opted_in=True,
                source="desk",
                notice_version=NOTICE_VERSION,
            )
            created.append(f"{channel} consent for {patient.full_name}")
    for name, mobile, email, channels in DOCTORS:
        await notifications_service.save_doctor(
            session, caller, name=name, mobile=mobile, email=email, channels=channels
        )
        created.append(f"contact of {name}")
    await notifications_service.update_policy(session, caller, {"report_to_doctor": True})
    return created
