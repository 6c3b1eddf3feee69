"""Role matrix of the notifications endpoints (the webhook is public and signature-checked)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.tenancy.models import Organisation
from tests.http.matrix.base import Case

READERS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PATHOLOGIST, Role.AUDITOR})
CONSENT_READERS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST, Role.AUDITOR})
CONSENT_WRITERS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST})
ADMIN = frozenset({Role.ADMIN})
POLICY_READERS = frozenset({Role.ADMIN, Role.AUDITOR})
DOCTOR_EDITORS = frozenset({Role.ADMIN, Role.FRONT_DESK})

CASES = [
    Case("GET", "/api/v1/notifications", READERS),
    Case("GET", "/api/v1/notifications/{notification_id}", READERS),
    Case("GET", "/api/v1/patients/{patient_id}/notification-consents", CONSENT_READERS),
    Case(
        "PUT",
        "/api/v1/patients/{patient_id}/notification-consents/{channel}",
        CONSENT_WRITERS,
        {"opted_in": True, "notice_version": "2026-11"},
    ),
    Case("GET", "/api/v1/notification-policy", POLICY_READERS),
    Case("PATCH", "/api/v1/notification-policy", ADMIN, {"report_to_doctor": True}),
    Case("GET", "/api/v1/notification-doctors", DOCTOR_EDITORS),
    Case(
        "PUT",
        "/api/v1/notification-doctors",
        DOCTOR_EDITORS,
        {"name": "Dr. Matrix {n}", "mobile": "9876543210", "channels": ["whatsapp"]},
    ),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from nidaan.notifications.enums import MessageKind, TemplateName
    from nidaan.notifications.service import Draft, notifications_service
    from tests.fixtures.lab import create_patient

    patient = await create_patient(session, organisation, mobile="9876543210")
    recipient = await notifications_service.patient_recipient(session, organisation.id, patient)
    row = await notifications_service.queue(
        session,
        organisation.id,
        recipient,
        Draft(
            template=TemplateName.PAYMENT_CONFIRMATION,
            kind=MessageKind.TEMPLATE,
            parameters=("₹500.00", "ORD-1", "available at the lab counter"),
            subject=("payment", patient.id),
            dedupe_base=f"matrix:{patient.id}",
        ),
        about_patient_id=patient.id,
        channels=[],
    )
    assert row is not None
    return {"patient_id": str(patient.id), "notification_id": str(row.id), "channel": "whatsapp"}
