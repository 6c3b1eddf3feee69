"""Demo home collection for `make run`: the Kothrud centre (CC1) serves three pincodes,
tomorrow's windows are open, fasting tests say so, three of the demo's patients are booked
for home visits and two visits are on Sunita's run (phlebotomist@demo.example.com). Each
start tops up tomorrow only."""

from __future__ import annotations

from datetime import time, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments.models import Appointment, ServiceArea
from nidaan.appointments.schemas import BookingCreate, SlotsGenerate, WindowIn
from nidaan.appointments.service import appointments_service
from nidaan.auth.enums import Role
from nidaan.auth.models import User
from nidaan.auth.principal import Principal
from nidaan.kit.time import IST, utcnow
from nidaan.patients.models import Patient
from nidaan.patients.schemas import PatientCreate
from nidaan.patients.service import patients_service
from nidaan.tenancy.models import Branch, Organisation

PINCODES = ["411038", "411029", "411052"]
WINDOWS = [(time(7, 0), time(8, 0)), (time(8, 0), time(9, 0)), (time(9, 0), time(10, 0))]
PREPARATION = {
    "GLUF": (10, "Nothing to eat or drink except water after 9 pm."),
    "TG": (12, "Fast for 12 hours; water is allowed. Take usual medicines."),
}
HOME_PATIENTS = [
    (
        PatientCreate(
            full_name="Rohan Mehta",
            sex="female",
            age_years=58,
            mobile="9822012345",
            preferred_language="hi",
            address="Flat 7, Sai Sparsh, Paud Road",
            pincode="411038",
        ),
        ["GLUF", "LIPID"],
        "Opposite Kothrud depot",
    ),
    (
        PatientCreate(
            full_name="Vikas Joshi",
            sex="male",
            age_years=66,
            mobile="9822023456",
            address="22 Karve Nagar",
            pincode="411052",
        ),
        ["CBC", "GLUF"],
        "Near Karve Nagar bus stop",
    ),
    (
        PatientCreate(
            full_name="Lakshmi Iyer",
            sex="female",
            age_years=34,
            mobile="9822034567",
            address="B-304, Erandwane Heights",
            pincode="411029",
        ),
        ["CBC"],
        "Behind Deenanath hospital",
    ),
]


def _principal(user: User) -> Principal:
    return Principal(
        kind="user",
        id=user.id,
        organisation_id=user.organisation_id,
        roles=frozenset(user.roles),
        label=user.email,
    )


async def seed_home_collection(session: AsyncSession, organisation: Organisation) -> list[str]:
    branch = await session.scalar(
        select(Branch).where(Branch.organisation_id == organisation.id, Branch.code == "CC1")
    )
    users = {
        u.roles[0]: u
        for u in await session.scalars(select(User).where(User.organisation_id == organisation.id))
    }
    if branch is None or Role.ADMIN not in users or Role.PHLEBOTOMIST not in users:
        return []
    admin, desk = _principal(users[Role.ADMIN]), _principal(users[Role.FRONT_DESK])
    created: list[str] = []
    if not await session.scalar(select(ServiceArea.id).where(ServiceArea.branch_id == branch.id)):
        await appointments_service.set_areas(session, admin, branch.id, PINCODES)
        for code, (hours, text) in PREPARATION.items():
            await appointments_service.set_preparation(session, admin, code, hours, text)
        created.append(f"home-collection area {', '.join(PINCODES)} for CC1")
    tomorrow = utcnow().astimezone(IST).date() + timedelta(days=1)
    if await appointments_service.slots(session, organisation.id, branch.id, tomorrow):
        return created
    await appointments_service.generate_slots(
        session,
        admin,
        branch.id,
        SlotsGenerate(
            first_day=tomorrow,
            last_day=tomorrow + timedelta(days=6),
            windows=[WindowIn(start=s, end=e) for s, e in WINDOWS],
            phlebotomists=2,
            visits_per_phlebotomist=3,
        ),
    )
    created.append(f"home-collection windows from {tomorrow:%d %b} for a week")
    slots = await appointments_service.slots(session, organisation.id, branch.id, tomorrow)
    booked = await session.scalar(
        select(func.count())
        .select_from(Appointment)
        .where(Appointment.branch_id == branch.id, Appointment.day == tomorrow)
    )
    if booked:
        return created
    visits = []
    for index, (data, items, landmark) in enumerate(HOME_PATIENTS):
        patient = await session.scalar(
            select(Patient).where(
                Patient.organisation_id == organisation.id,
                Patient.full_name == data.full_name,
            )
        )
        if patient is None:
            registration = await patients_service.register(
                session, desk, data.model_copy(update={"registered_at_branch_id": branch.id})
            )
            patient = registration.patient
        row, _ = await appointments_service.book(
            session,
            desk,
            BookingCreate(
                slot_id=slots[min(index, len(slots) - 1)].id,
                patient_id=patient.id,
                items=items,
                address=data.address or "",
                landmark=landmark,
                pincode=data.pincode or PINCODES[0],
            ),
        )
        visits.append(row)
        created.append(
            f"home visit for {patient.full_name} at {slots[index].starts_at.astimezone(IST):%H:%M}"
        )
    rider = users[Role.PHLEBOTOMIST]
    await appointments_service.assign(
        session, desk, [(v.id, rider.id, n) for n, v in enumerate(visits[:2], start=1)]
    )
    created.append(f"run of {rider.full_name}: {len(visits[:2])} visits")
    return created
