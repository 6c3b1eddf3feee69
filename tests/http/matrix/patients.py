"""Role matrix of the patients endpoints."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.kit.time import utcnow
from nidaan.patients.models import PatientDuplicateFlag
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_patient
from tests.http.matrix.base import ALL, Case

REGISTRARS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST})
REVIEWERS = frozenset({Role.ADMIN, Role.FRONT_DESK})

CASES = [
    Case("GET", "/api/v1/patients", ALL),
    Case("GET", "/api/v1/patients/{patient_id}", ALL),
    Case(
        "POST",
        "/api/v1/patients",
        REGISTRARS,
        {"full_name": "Matrix Patient {n}", "sex": "female", "age_years": 30},
    ),
    Case("PATCH", "/api/v1/patients/{patient_id}", REGISTRARS, {"version": 1, "city": "Pune"}),
    Case("GET", "/api/v1/patients/duplicates", REVIEWERS),
    Case("POST", "/api/v1/patients/duplicates/{flag_id}/dismiss", REVIEWERS),
    Case(
        "POST",
        "/api/v1/patients/{patient_id}/merge",
        REVIEWERS,
        {"duplicate_id": "{duplicate_id}"},
    ),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    patient = await create_patient(session, organisation)
    duplicate = await create_patient(session, organisation)
    flag = PatientDuplicateFlag(
        organisation_id=organisation.id,
        patient_id=duplicate.id,
        candidate_id=patient.id,
        score=95,
        reasons="same mobile; similar name",
        status="open",
        created_at=utcnow(),
    )
    session.add(flag)
    await session.flush()
    return {
        "patient_id": str(patient.id),
        "duplicate_id": str(duplicate.id),
        "flag_id": str(flag.id),
    }
