"""How visits are shown (REST, the run sheet, sync pulls): with the patient's name and
masked mobile, the window, the tubes to carry and the preparation of the tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments.models import Appointment, Slot
from nidaan.appointments.schemas import (
    AppointmentOut,
    PreparationOut,
    PublicAppointment,
    SlotOut,
    TubeOut,
)
from nidaan.appointments.service import appointments_service
from nidaan.auth.models import User
from nidaan.kit.errors import NidaanError
from nidaan.kit.phone import mask_mobile
from nidaan.patients.models import Patient


def slot_out(slot: Slot) -> SlotOut:
    return SlotOut(
        id=slot.id,
        branch_id=slot.branch_id,
        day=slot.day,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        phlebotomists=slot.phlebotomists,
        visits_per_phlebotomist=slot.visits_per_phlebotomist,
        capacity=slot.capacity,
        booked=slot.booked,
        available=max(0, slot.capacity - slot.booked),
        closed=slot.closed,
    )


async def _needs(
    session: AsyncSession, organisation_id: uuid.UUID, items: list[str], cache: dict[Any, Any]
) -> tuple[list[TubeOut], list[PreparationOut]]:
    key = (organisation_id, tuple(items))
    if key not in cache:
        try:
            _, tubes, preparation = await appointments_service.needs(
                session, organisation_id, items
            )
        except NidaanError:
            # A test withdrawn from the catalogue after booking: show the visit anyway.
            tubes, preparation = [], []
        cache[key] = (
            [
                TubeOut(specimen_type=t.specimen_type, container=t.container, tests=list(t.tests))
                for t in tubes
            ],
            [
                PreparationOut(
                    test_code=t.code,
                    test_name=t.name,
                    fasting_hours=p.fasting_hours,
                    instructions=p.instructions,
                )
                for p, t in preparation
            ],
        )
    return cache[key]


async def appointment_views(session: AsyncSession, rows: list[Appointment]) -> list[AppointmentOut]:
    if not rows:
        return []
    slots = {
        s.id: s
        for s in await session.scalars(select(Slot).where(Slot.id.in_({r.slot_id for r in rows})))
    }
    patients = {
        p.id: p
        for p in await session.scalars(
            select(Patient).where(Patient.id.in_({r.patient_id for r in rows}))
        )
    }
    people_ids = {r.phlebotomist_id for r in rows if r.phlebotomist_id}
    people = (
        {u.id: u for u in await session.scalars(select(User).where(User.id.in_(people_ids)))}
        if people_ids
        else {}
    )
    cache: dict[Any, Any] = {}
    out = []
    for row in rows:
        slot, patient = slots[row.slot_id], patients[row.patient_id]
        tubes, preparation = await _needs(session, row.organisation_id, list(row.items), cache)
        person = people.get(row.phlebotomist_id) if row.phlebotomist_id else None
        out.append(
            AppointmentOut(
                id=row.id,
                branch_id=row.branch_id,
                slot_id=row.slot_id,
                day=row.day,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                patient_id=row.patient_id,
                patient_name=patient.full_name,
                mobile=mask_mobile(patient.mobile) if patient.mobile else None,
                status=row.status,  # type: ignore[arg-type]
                booked_tests=list(row.items),
                address=row.address,
                landmark=row.landmark,
                pincode=row.pincode,
                latitude=row.latitude,
                longitude=row.longitude,
                notes=row.notes,
                booked_via=row.booked_via,
                phlebotomist_id=row.phlebotomist_id,
                phlebotomist_name=person.full_name if person else None,
                run_position=row.run_position,
                status_times=dict(row.status_times),
                status_reason=row.status_reason,
                reschedule_count=row.reschedule_count,
                order_id=row.order_id,
                payment_id=row.payment_id,
                tubes=tubes,
                preparation=preparation,
                fasting_hours=max((p.fasting_hours for p in preparation), default=0),
                version=row.version,
            )
        )
    return out


async def public_view(session: AsyncSession, row: Appointment) -> PublicAppointment:
    (view,) = await appointment_views(session, [row])
    return PublicAppointment(
        id=view.id,
        status=view.status,
        starts_at=view.starts_at,
        ends_at=view.ends_at,
        booked_tests=view.booked_tests,
        fasting_hours=view.fasting_hours,
        preparation=view.preparation,
    )
