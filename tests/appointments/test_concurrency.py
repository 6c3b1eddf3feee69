"""Randomised bookings and reschedules in real, concurrent PostgreSQL transactions: a slot
never holds more visits than its capacity, its count always equals its live visits, a
patient never has two live visits on one day, and every refusal is the right one."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, time, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from nidaan.appointments.enums import ACTIVE_STATES
from nidaan.appointments.errors import AlreadyBooked, SlotFull
from nidaan.appointments.models import Appointment, Slot
from nidaan.appointments.schemas import SlotsGenerate, WindowIn
from nidaan.appointments.service import appointments_service
from nidaan.tenancy.models import Branch, Organisation
from tests.appointments.support import booking, build_home_lab, tomorrow
from tests.audit.conftest import CommittingSession
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import create_organisation
from tests.fixtures.orders import system_principal

PATIENTS = 6
WINDOWS = ((time(7, 0), time(8, 0)), (time(8, 0), time(9, 0)))
_days = itertools.count(2)


@dataclass
class World:
    organisation: Organisation
    branch: Branch
    patients: list
    lab: object


async def wipe_organisation(conninfo: str, organisation_id: str) -> None:
    """Delete every row of the organisation (triggers off, so foreign keys do not order it)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SET session_replication_role = replica")
        tables = await conn.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name = "
            "'organisation_id' AND table_schema = 'public'"
        )
        for (table,) in await tables.fetchall():
            await conn.execute(
                f'DELETE FROM "{table}" WHERE organisation_id = %s',
                (organisation_id,),
            )
        await conn.execute("DELETE FROM organisations WHERE id = %s", (organisation_id,))


@pytest.fixture
async def world(
    committing_session: CommittingSession, superuser_conninfo: str
) -> AsyncIterator[World]:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await build_home_lab(session, organisation, people=False)
        patients = [lab.patient] + [
            await create_patient(session, organisation) for _ in range(PATIENTS - 1)
        ]
    yield World(organisation, lab.branch, patients, lab)
    await wipe_organisation(superuser_conninfo, str(organisation.id))


async def open_day(
    committing_session: CommittingSession, world: World, capacities: tuple[int, int]
) -> tuple[date, list[Slot]]:
    """A fresh day whose two windows have the given capacities (1 phlebotomist x n)."""
    day = tomorrow() + timedelta(days=next(_days))
    caller = system_principal(world.organisation)
    async with committing_session() as session:
        for (start, end), capacity in zip(WINDOWS, capacities, strict=True):
            await appointments_service.generate_slots(
                session,
                caller,
                world.branch.id,
                SlotsGenerate(
                    first_day=day,
                    last_day=day,
                    windows=[WindowIn(start=start, end=end)],
                    phlebotomists=1,
                    visits_per_phlebotomist=capacity,
                ),
            )
        slots = await appointments_service.slots(
            session, world.organisation.id, world.branch.id, day
        )
    return day, slots


async def check_invariants(
    committing_session: CommittingSession, world: World, day: date
) -> tuple[list[Slot], list[Appointment]]:
    async with committing_session() as session:
        slots = list(
            await session.scalars(
                select(Slot).where(Slot.branch_id == world.branch.id, Slot.day == day)
            )
        )
        live = list(
            await session.scalars(
                select(Appointment).where(
                    Appointment.branch_id == world.branch.id,
                    Appointment.day == day,
                    Appointment.status.in_(ACTIVE_STATES),
                )
            )
        )
    per_slot = Counter(a.slot_id for a in live)
    for slot in slots:
        assert slot.booked <= slot.capacity
        assert slot.booked == per_slot[slot.id]
    per_patient = Counter(a.patient_id for a in live)
    assert all(n == 1 for n in per_patient.values())
    return slots, live


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    capacities=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    requests=st.lists(
        st.tuples(st.integers(0, PATIENTS - 1), st.integers(0, 1)), min_size=1, max_size=10
    ),
)
async def test_concurrent_bookings_never_exceed_capacity(
    committing_session: CommittingSession,
    world: World,
    capacities: tuple[int, int],
    requests: list[tuple[int, int]],
) -> None:
    day, slots = await open_day(committing_session, world, capacities)
    caller = system_principal(world.organisation, roles=("front_desk",))
    start = asyncio.Event()

    async def book(patient: int, window: int) -> str:
        try:
            async with committing_session() as session:
                await start.wait()
                await appointments_service.book(
                    session,
                    caller,
                    booking(world.lab, slots[window], world.patients[patient].id),  # type: ignore[arg-type]
                )
        except SlotFull:
            return "full"
        except AlreadyBooked:
            return "already"
        return "booked"

    tasks = [asyncio.create_task(book(p, w)) for p, w in requests]
    await asyncio.sleep(0.05)
    start.set()
    outcomes = await asyncio.gather(*tasks)

    slots_after, live = await check_invariants(committing_session, world, day)
    assert outcomes.count("booked") == len(live)
    by_id = {s.id: s for s in slots_after}
    booked_patients = {a.patient_id for a in live}
    for (patient, window), outcome in zip(requests, outcomes, strict=True):
        if outcome == "full":  # refused only when the window really was full
            assert by_id[slots[window].id].booked == by_id[slots[window].id].capacity
        if outcome == "already":  # refused only when the patient really has a visit
            assert world.patients[patient].id in booked_patients
    # Every patient who asked got a place unless both windows they asked for were full.
    for patient in {p for p, _ in requests}:
        asked = {w for p, w in requests if p == patient}
        if world.patients[patient].id not in booked_patients:
            assert all(by_id[slots[w].id].booked == by_id[slots[w].id].capacity for w in asked)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    capacities=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    moves=st.lists(
        st.tuples(st.integers(0, PATIENTS - 1), st.integers(0, 1), st.booleans()),
        min_size=1,
        max_size=10,
    ),
)
async def test_random_concurrent_reschedules_and_cancels_keep_counts_right(
    committing_session: CommittingSession,
    world: World,
    capacities: tuple[int, int],
    moves: list[tuple[int, int, bool]],
) -> None:
    day, slots = await open_day(committing_session, world, capacities)
    caller = system_principal(world.organisation, roles=("front_desk",))
    # Fill the windows in turn, one visit per patient while there is room.
    visits = {}
    async with committing_session() as session:
        for index, patient in enumerate(world.patients):
            for window in (index % 2, 1 - index % 2):
                try:
                    async with session.begin_nested():
                        row, _ = await appointments_service.book(
                            session,
                            caller,
                            booking(world.lab, slots[window], patient.id),  # type: ignore[arg-type]
                        )
                    visits[index] = row.id
                    break
                except SlotFull:
                    continue
    start = asyncio.Event()

    async def move(patient: int, window: int, cancel: bool) -> str:
        if patient not in visits:
            return "none"
        try:
            async with committing_session() as session:
                await start.wait()
                if cancel:
                    await appointments_service.cancel(session, caller, visits[patient], "random")
                else:
                    await appointments_service.reschedule(
                        session, caller, visits[patient], slots[window].id, "random"
                    )
        except SlotFull:
            return "full"
        except Exception as exc:  # an illegal move (already cancelled) is a clean refusal
            if getattr(exc, "code", None) == "illegal_visit_transition":
                return "illegal"
            raise
        return "done"

    tasks = [asyncio.create_task(move(*m)) for m in moves]
    await asyncio.sleep(0.05)
    start.set()
    outcomes = await asyncio.gather(*tasks)
    final_slots = (await check_invariants(committing_session, world, day))[0]
    # A move refused as full means a slot was full at that moment; only when no other move
    # went through (none freed a place afterwards) must one still be full at the end.
    if "full" in outcomes and "done" not in outcomes:
        assert any(s.booked == s.capacity for s in final_slots), (outcomes, final_slots)
