"""Role matrix of home collection (the patient booking link is public: a mobile code)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.tenancy.models import Organisation
from tests.http.matrix.base import Case

READERS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST, Role.AUDITOR})
ADMIN = frozenset({Role.ADMIN})
DESK = frozenset({Role.ADMIN, Role.FRONT_DESK})
ROAD = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST})
DASHBOARD = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.AUDITOR})
BRANCH = "/api/v1/appointments/branches/{branch_id}"
VISIT = "/api/v1/appointments/{appointment_id}"

CASES = [
    Case("GET", BRANCH + "/areas", READERS),
    Case("PUT", BRANCH + "/areas", ADMIN, {"pincodes": ["560001", "560034"]}),
    Case(
        "POST",
        BRANCH + "/slots",
        ADMIN,
        {
            "first_day": "{later_day}",
            "last_day": "{later_day}",
            "windows": [{"start": "07:00", "end": "08:00"}],
            "phlebotomists": 2,
            "visits_per_phlebotomist": 3,
        },
    ),
    Case("GET", BRANCH + "/slots", READERS),
    Case("GET", BRANCH + "/blackouts", READERS),
    Case("POST", BRANCH + "/blackouts", ADMIN, {"day": "{later_day}", "reason": "Holiday {n}"}),
    Case("GET", "/api/v1/appointments/preparations", READERS),
    Case(
        "PUT",
        "/api/v1/appointments/preparations",
        ADMIN,
        {"test": "CBC", "fasting_hours": 0, "instructions": "None"},
    ),
    Case(
        "POST",
        "/api/v1/appointments",
        DESK,
        {
            "slot_id": "{slot_id}",
            "patient_id": "{patient2_id}",
            "items": ["CBC"],
            "address": "7 MG Road",
            "pincode": "560001",
        },
    ),
    Case("GET", "/api/v1/appointments", READERS),
    Case("GET", "/api/v1/appointments/dashboard", DASHBOARD),
    Case("GET", BRANCH + "/suggestions", DESK),
    Case(
        "POST",
        "/api/v1/appointments/assignments",
        DESK,
        {
            "assignments": [
                {"appointment_id": "{appointment_id}", "phlebotomist_id": "{phlebotomist_id}"}
            ]
        },
    ),
    Case("GET", "/api/v1/appointments/runs/{phlebotomist_id}", ROAD),
    Case("GET", VISIT, READERS),
    Case("POST", VISIT + "/reschedule", DESK, {"slot_id": "{slot2_id}", "reason": "Asked"}),
    Case("POST", VISIT + "/cancel", DESK, {"reason": "Asked"}),
    Case("POST", VISIT + "/status", ROAD, {"to": "on_the_way"}),
    Case("POST", VISIT + "/collect", ROAD, {}),
]

LINK = "/api/v1/public/book/{organisation}/{branch}"
# The patient link: no staff token; the booking token comes from a code sent to the mobile.
PUBLIC = {
    ("GET", LINK + "/slots"),
    ("GET", LINK + "/tests"),
    ("POST", LINK + "/code"),
    ("POST", LINK + "/verify"),
    ("POST", LINK + "/appointments"),
    ("GET", LINK + "/appointments"),
    ("POST", LINK + "/appointments/{appointment_id}/reschedule"),
    ("POST", LINK + "/appointments/{appointment_id}/cancel"),
}


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from nidaan.appointments.service import appointments_service
    from tests.appointments.support import booking, build_home_lab, tomorrow
    from tests.fixtures.lab import create_patient
    from tests.fixtures.orders import system_principal

    lab = await build_home_lab(session, organisation)
    caller = system_principal(organisation)
    row, _ = await appointments_service.book(session, caller, booking(lab, lab.slots[0]))
    rider = lab.phlebotomists[0]
    await appointments_service.assign(session, caller, [(row.id, rider.id, 1)])
    second = await create_patient(session, organisation)
    return {
        "branch_id": str(lab.branch.id),
        "appointment_id": str(row.id),
        "phlebotomist_id": str(rider.id),
        "slot_id": str(lab.slots[1].id),
        "slot2_id": str(lab.slots[2].id),
        "patient2_id": str(second.id),
        "later_day": (tomorrow() + timedelta(days=3)).isoformat(),
    }
