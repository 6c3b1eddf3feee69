"""Role matrix of the ABDM endpoints (the gateway's /api/v3 callbacks use its JWT instead).

ABDM is not configured in tests, so calls that must reach ABDM answer 409 abdm_not_enabled
for the roles allowed to make them (the role check comes first).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm.models import AbdmEnrolment, AbdmFacility, AbdmShareToken
from nidaan.auth.enums import Role
from nidaan.kit.ids import new_id
from nidaan.kit.time import IST, utcnow
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_patient
from tests.http.matrix.base import Case

ADMIN = frozenset({Role.ADMIN})
DESK = frozenset({Role.ADMIN, Role.FRONT_DESK})
READERS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PATHOLOGIST, Role.AUDITOR})
AUDITORS = frozenset({Role.ADMIN, Role.AUDITOR})
ABDM_CALL = (200, 201, 409)

CASES = [
    Case("GET", "/api/v1/abdm/facilities", DESK),
    Case("POST", "/api/v1/abdm/facilities", ADMIN, {"hip_id": "INM{n}", "name": "Matrix lab"}),
    Case("GET", "/api/v1/abdm/facilities/{facility_id}/qr", DESK),
    Case("POST", "/api/v1/abdm/bridge", ADMIN, ok_statuses=(202, 409)),
    Case(
        "POST",
        "/api/v1/abdm/enrolments",
        DESK,
        {"patient_id": "{patient_id}", "aadhaar_number": "234123412346", "consent": True},
        ok_statuses=ABDM_CALL,
    ),
    Case("GET", "/api/v1/abdm/enrolments/{enrolment_id}", DESK),
    Case(
        "POST",
        "/api/v1/abdm/enrolments/{enrolment_id}/aadhaar-otp",
        DESK,
        {"otp": "123456", "mobile": "9876543210"},
        ok_statuses=ABDM_CALL,
    ),
    Case(
        "POST",
        "/api/v1/abdm/enrolments/{enrolment_id}/mobile-otp",
        DESK,
        {"otp": "123456"},
        ok_statuses=ABDM_CALL,
    ),
    Case(
        "POST",
        "/api/v1/abdm/enrolments/{enrolment_id}/address",
        DESK,
        {"abha_address": "matrix.person"},
        ok_statuses=ABDM_CALL,
    ),
    Case(
        "POST",
        "/api/v1/abdm/abha-links",
        DESK,
        {"patient_id": "{patient_id}", "abha_number": "91-1111-2222-3333"},
        ok_statuses=ABDM_CALL,
    ),
    Case(
        "POST",
        "/api/v1/abdm/abha-links/{enrolment_id}/otp",
        DESK,
        {"otp": "123456"},
        ok_statuses=ABDM_CALL,
    ),
    Case("GET", "/api/v1/abdm/care-contexts", READERS),
    Case("POST", "/api/v1/abdm/patients/{patient_id}/link", DESK),
    Case("GET", "/api/v1/abdm/requests", READERS),
    Case("GET", "/api/v1/abdm/consents", READERS),
    Case("GET", "/api/v1/abdm/transfers", READERS),
    Case("GET", "/api/v1/abdm/messages", AUDITORS),
    Case("GET", "/api/v1/abdm/share-tokens", DESK),
    Case("POST", "/api/v1/abdm/share-tokens/{token_id}/register", DESK, {}),
    Case(
        "POST",
        "/api/v1/abdm/share-tokens/{token_id}/match",
        DESK,
        {"patient_id": "{patient_id}"},
    ),
    Case("POST", "/api/v1/abdm/share-tokens/{token_id}/dismiss", DESK),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    patient = await create_patient(session, organisation)
    facility = AbdmFacility(
        organisation_id=organisation.id,
        hip_id=f"INX{new_id().hex[-10:]}",
        name="Matrix facility",
        counter_code="REG-1",
        is_active=True,
    )
    session.add(facility)
    await session.flush()
    enrolment = AbdmEnrolment(
        organisation_id=organisation.id,
        patient_id=patient.id,
        kind="create",
        status="otp_sent",
        transaction_id="txn",
        aadhaar_last4="2346",
    )
    token = AbdmShareToken(
        organisation_id=organisation.id,
        facility_id=facility.id,
        counter_code="REG-1",
        share_date=utcnow().astimezone(IST).date(),
        token_number=1,
        request_id=str(new_id()),
        status="waiting",
        name="Shared Person",
        gender="F",
        year_of_birth=1990,
        month_of_birth=1,
        day_of_birth=2,
        abha_address=f"shared{new_id().hex[-6:]}@sbx",
        expires_at=utcnow() + timedelta(minutes=30),
    )
    session.add_all([enrolment, token])
    await session.flush()
    return {
        "patient_id": str(patient.id),
        "facility_id": str(facility.id),
        "enrolment_id": str(enrolment.id),
        "token_id": str(token.id),
    }
