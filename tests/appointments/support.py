"""A home-collection lab: a branch serving two pincodes, tomorrow's windows, three tests in
three tubes, a patient with a mobile number, and the staff who book and ride."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments.models import Slot
from nidaan.appointments.schemas import BookingCreate, SlotsGenerate, WindowIn
from nidaan.appointments.service import appointments_service
from nidaan.billing.models import BillingSettings
from nidaan.catalog.models import CatalogTest
from nidaan.kit.time import IST, utcnow
from nidaan.patients.models import Patient
from nidaan.tenancy.models import Branch, Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_branch, create_user
from tests.fixtures.orders import system_principal

PINCODES = ("560001", "560034")
WINDOWS = ((time(7, 0), time(8, 0)), (time(8, 0), time(9, 0)), (time(9, 0), time(10, 0)))


def tomorrow() -> date:
    return utcnow().astimezone(IST).date() + timedelta(days=1)


@dataclass
class HomeLab:
    organisation: Organisation
    branch: Branch
    tests: dict[str, CatalogTest]
    patient: Patient
    slots: list[Slot]
    admin: Any
    desk: Any
    phlebotomists: list[Any]


async def build_home_lab(
    session: AsyncSession,
    organisation: Organisation,
    *,
    phlebotomists: int = 2,
    visits_each: int = 2,
    day: date | None = None,
    people: bool = True,
) -> HomeLab:
    branch = await create_branch(session, organisation)
    branch.state = "Karnataka"
    session.add(
        BillingSettings(
            organisation_id=organisation.id,
            legal_name="Home Diagnostics Pvt Ltd",
            state_code="29",
            home_collection_charge=Decimal("100"),
            home_collection_free_above=Decimal("2000"),
        )
    )
    tests = {
        "GLU-F": await create_catalog_test(
            session,
            organisation,
            code="GLU-F",
            name="Glucose, fasting",
            specimen_type="plasma",
            container="fluoride_grey",
        ),
        "CBC": await create_catalog_test(
            session,
            organisation,
            code="CBC",
            name="Complete blood count",
            specimen_type="whole_blood",
            container="edta_purple",
        ),
        "LFT": await create_catalog_test(
            session, organisation, code="LFT", name="Liver function", price=Decimal("450.00")
        ),
    }
    patient = await create_patient(session, organisation, mobile="9876543210")
    admin = system_principal(organisation)
    await appointments_service.set_areas(session, admin, branch.id, list(PINCODES))
    the_day = day or tomorrow()
    await appointments_service.generate_slots(
        session,
        admin,
        branch.id,
        SlotsGenerate(
            first_day=the_day,
            last_day=the_day,
            windows=[WindowIn(start=s, end=e) for s, e in WINDOWS],
            phlebotomists=phlebotomists,
            visits_per_phlebotomist=visits_each,
        ),
    )
    await appointments_service.set_preparation(
        session, admin, "GLU-F", 10, "Nothing to eat after 10 pm; water is fine."
    )
    slots = await appointments_service.slots(session, organisation.id, branch.id, the_day)
    staff: dict[str, Any] = {"admin": None, "desk": None, "phlebotomists": []}
    if people:
        staff["admin"] = await create_user(session, organisation, roles=("admin",))
        staff["desk"] = await create_user(session, organisation, roles=("front_desk",))
        staff["phlebotomists"] = [
            await create_user(session, organisation, roles=("phlebotomist",), branches=[branch])
            for _ in range(phlebotomists)
        ]
    return HomeLab(organisation, branch, tests, patient, slots, **staff)


def booking(
    lab: HomeLab,
    slot: Slot,
    patient_id: uuid.UUID | None = None,
    *,
    items: tuple[str, ...] = ("GLU-F", "CBC"),
    pincode: str = PINCODES[0],
    **extra: Any,
) -> BookingCreate:
    return BookingCreate(
        slot_id=slot.id,
        patient_id=patient_id or lab.patient.id,
        items=list(items),
        address="12, 3rd Cross, Indiranagar",
        landmark="Opposite the temple",
        pincode=pincode,
        latitude=Decimal("12.971599"),
        longitude=Decimal("77.594566"),
        **extra,
    )
