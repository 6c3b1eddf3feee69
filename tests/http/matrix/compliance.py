"""Role matrix of the DPDP (privacy) endpoints; the patient's own page is public (a link)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.tenancy.models import Organisation
from tests.http.matrix.base import Case

CONSENT_READERS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST, Role.AUDITOR})
CONSENT_WRITERS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST})
DESK = frozenset({Role.ADMIN, Role.FRONT_DESK})
DESK_READERS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.AUDITOR})
ADMIN = frozenset({Role.ADMIN})
OVERSEERS = frozenset({Role.ADMIN, Role.AUDITOR})

P = "/api/v1/patients/{patient_id}/privacy"
BREACH = {
    "title": "Matrix breach {n}",
    "description": "test",
    "data_classes": ["contact"],
    "occurred_from": "2026-12-01T10:00:00+05:30",
    "occurred_to": "2026-12-01T11:00:00+05:30",
    "aware_at": "2026-12-01T12:00:00+05:30",
}

CASES = [
    Case("GET", P + "/notice", CONSENT_READERS),
    Case("PUT", P + "/consents/{purpose}", CONSENT_WRITERS, {"granted": True}),
    Case("GET", P + "/summary", DESK_READERS),
    Case("GET", P + "/export", DESK),
    Case("GET", P + "/access-log", OVERSEERS),
    Case("GET", P + "/nominee", DESK_READERS),
    Case(
        "PUT",
        P + "/nominee",
        DESK,
        {"full_name": "Nominee {n}", "relationship": "son", "mobile": "9812345678"},
    ),
    Case("POST", P + "/requests", DESK, {"kind": "grievance", "description": "late {n}"}),
    Case("POST", P + "/link", DESK),
    Case("POST", P + "/legal-holds", ADMIN, {"reason": "inquiry {n}"}),
    Case("GET", "/api/v1/privacy/requests", DESK_READERS),
    Case("GET", "/api/v1/privacy/requests/{request_id}", DESK_READERS),
    Case(
        "POST",
        "/api/v1/privacy/requests/{request_id}/close",
        ADMIN,
        {"status": "refused", "resolution": "no such data"},
    ),
    Case("GET", "/api/v1/privacy/legal-holds", OVERSEERS),
    Case("POST", "/api/v1/privacy/legal-holds/{hold_id}/release", ADMIN),
    Case("GET", "/api/v1/privacy/retention", OVERSEERS),
    Case("POST", "/api/v1/privacy/retention/run", ADMIN),
    Case("POST", "/api/v1/privacy/breaches", ADMIN, BREACH),
    Case("GET", "/api/v1/privacy/breaches", OVERSEERS),
    Case("GET", "/api/v1/privacy/breaches/{breach_id}", OVERSEERS),
    Case("PATCH", "/api/v1/privacy/breaches/{breach_id}", ADMIN, {"mitigation": "wiped"}),
    Case("GET", "/api/v1/privacy/breaches/{breach_id}/affected", OVERSEERS),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from nidaan.compliance.enums import ConsentSource, RequestKind
    from nidaan.compliance.service import compliance_service
    from nidaan.kit.time import utcnow
    from tests.fixtures.lab import create_patient
    from tests.fixtures.objects import create_user
    from tests.fixtures.results import principal_of

    patient = await create_patient(session, organisation, mobile="9876543210")
    admin = principal_of(await create_user(session, organisation, roles=("admin",)))
    request = await compliance_service.create_request(
        session,
        patient,
        RequestKind.ACCESS,
        description=None,
        changes=None,
        source=ConsentSource.DESK,
        caller=admin,
    )
    hold = await compliance_service.place_hold(session, admin, patient, "matrix")
    now = utcnow()
    breach = await compliance_service.create_breach(
        session,
        admin,
        title="matrix",
        description="matrix",
        data_classes=["contact"],
        occurred_from=now,
        occurred_to=now,
        aware_at=now,
    )
    return {
        "patient_id": str(patient.id),
        "purpose": "marketing",
        "request_id": str(request.id),
        "hold_id": str(hold.id),
        "breach_id": str(breach.id),
    }
