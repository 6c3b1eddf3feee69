"""Use cases of home collection: configure areas, slots, blackouts and preparation; book,
reschedule and cancel (front desk and the patient link); assign runs; move a visit along
at the door, where it becomes an order with samples and a payment; reminders.

Capacity is never checked-then-written: a booking takes its place with one
``UPDATE appointment_slots SET booked = booked + 1 WHERE booked < capacity`` (the row lock
serialises concurrent bookings of one slot), and a patient's second live visit on a day is
refused by a partial unique index, so concurrent requests cannot get past either rule.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import any_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments import domain
from nidaan.appointments.enums import ACTIVE_STATES, BookedVia, VisitStatus
from nidaan.appointments.errors import (
    AlreadyBooked,
    AppointmentNotFound,
    AreaNotServed,
    CapacityBelowBookings,
    IllegalVisitTransition,
    SlotClosed,
    SlotFull,
    SlotNotFound,
)
from nidaan.appointments.models import (
    Appointment,
    Blackout,
    Preparation,
    ServiceArea,
    Slot,
)
from nidaan.appointments.schemas import (
    BookingCreate,
    CollectIn,
    SlotsGenerate,
    SlotsGenerated,
)
from nidaan.audit.service import audit_service
from nidaan.auth.enums import Role
from nidaan.auth.errors import OutsideYourBranches
from nidaan.auth.models import User, UserBranch
from nidaan.auth.principal import Principal
from nidaan.billing.counter import counter_service
from nidaan.billing.schemas import InvoiceCreate
from nidaan.billing.service import billing_service
from nidaan.catalog.enums import ResultType
from nidaan.catalog.models import CatalogTest, Panel, PanelTest
from nidaan.catalog.service import catalog_service
from nidaan.config import get_settings
from nidaan.kit.errors import InvalidInput, NidaanError, NotFound
from nidaan.kit.ids import new_id
from nidaan.kit.time import IST, utcnow
from nidaan.notifications.service import notifications_service
from nidaan.orders.schemas import OrderCreate
from nidaan.orders.service import orders_service
from nidaan.patients.service import patients_service
from nidaan.samples.enums import SampleStatus
from nidaan.samples.models import Sample
from nidaan.samples.service import samples_service
from nidaan.tenancy.models import Branch, Organisation
from nidaan.tenancy.service import tenancy_service

S = VisitStatus
logger = logging.getLogger(__name__)
#: How far ahead of the window a phone's clock may report a step (offline phones drift).
CLOCK_SKEW = timedelta(minutes=10)


def _snapshot(row: Appointment) -> dict[str, Any]:
    return {
        "slot_id": row.slot_id,
        "day": row.day,
        "patient_id": row.patient_id,
        "status": row.status,
        "items": list(row.items),
        "pincode": row.pincode,
        "phlebotomist_id": row.phlebotomist_id,
        "run_position": row.run_position,
        "status_reason": row.status_reason,
        "order_id": row.order_id,
        "payment_id": row.payment_id,
    }


class AppointmentsService:
    # ------------------------------------------------------------ configuration

    async def require_branch(
        self, session: AsyncSession, caller: Principal, branch_id: uuid.UUID
    ) -> Branch:
        branch = await tenancy_service.get_branch(session, caller, branch_id)
        if not caller.may_use_branch(branch.id):
            raise OutsideYourBranches("You do not work at this branch.", entity="branch")
        return branch

    async def set_areas(
        self, session: AsyncSession, caller: Principal, branch_id: uuid.UUID, pincodes: list[str]
    ) -> list[ServiceArea]:
        """Replace the pincodes a branch serves (existing bookings are kept)."""
        branch = await self.require_branch(session, caller, branch_id)
        current = await self.areas(session, caller, branch.id)
        before = sorted(a.pincode for a in current)
        wanted = sorted(set(pincodes))
        for area in current:
            if area.pincode not in wanted:
                await session.delete(area)
        have = {a.pincode for a in current}
        for pincode in wanted:
            if pincode not in have:
                session.add(
                    ServiceArea(
                        organisation_id=caller.organisation_id, branch_id=branch.id, pincode=pincode
                    )
                )
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="appointments.areas_set",
            entity_type="branch",
            entity_id=branch.id,
            before={"pincodes": before},
            after={"pincodes": wanted},
        )
        return await self.areas(session, caller, branch.id)

    async def areas(
        self, session: AsyncSession, caller: Principal, branch_id: uuid.UUID
    ) -> list[ServiceArea]:
        return list(
            await session.scalars(
                select(ServiceArea)
                .where(
                    ServiceArea.organisation_id == caller.organisation_id,
                    ServiceArea.branch_id == branch_id,
                )
                .order_by(ServiceArea.pincode)
            )
        )

    async def generate_slots(
        self, session: AsyncSession, caller: Principal, branch_id: uuid.UUID, data: SlotsGenerate
    ) -> SlotsGenerated:
        """Open the windows of each day (skipping blackout days); an existing window gets the
        new capacity, which may not drop below the visits already booked in it."""
        branch = await self.require_branch(session, caller, branch_id)
        blackouts = set(
            await session.scalars(
                select(Blackout.day).where(
                    Blackout.branch_id == branch.id,
                    Blackout.day.between(data.first_day, data.last_day),
                )
            )
        )
        capacity = data.phlebotomists * data.visits_per_phlebotomist
        created = updated = 0
        windows = [(w.start, w.end) for w in data.windows]
        for day in domain.days_between(data.first_day, data.last_day):
            if day in blackouts:
                continue
            for starts_at, ends_at in domain.windows_of(day, windows):
                slot = await session.scalar(
                    select(Slot)
                    .where(Slot.branch_id == branch.id, Slot.starts_at == starts_at)
                    .with_for_update()
                )
                if slot is None:
                    session.add(
                        Slot(
                            organisation_id=caller.organisation_id,
                            branch_id=branch.id,
                            day=day,
                            starts_at=starts_at,
                            ends_at=ends_at,
                            phlebotomists=data.phlebotomists,
                            visits_per_phlebotomist=data.visits_per_phlebotomist,
                            capacity=capacity,
                        )
                    )
                    created += 1
                    continue
                if capacity < slot.booked:
                    raise CapacityBelowBookings(
                        f"The {starts_at.astimezone(IST):%d %b %H:%M} window has {slot.booked} "
                        f"visits booked; capacity {capacity} is too small. Move visits first.",
                        slot_id=str(slot.id),
                        booked=slot.booked,
                    )
                slot.ends_at = ends_at
                slot.phlebotomists = data.phlebotomists
                slot.visits_per_phlebotomist = data.visits_per_phlebotomist
                slot.capacity = capacity
                slot.closed = False
                updated += 1
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="appointments.slots_opened",
            entity_type="branch",
            entity_id=branch.id,
            after={
                "first_day": data.first_day,
                "last_day": data.last_day,
                "windows": [f"{s:%H:%M}-{e:%H:%M}" for s, e in windows],
                "capacity": capacity,
                "created": created,
                "updated": updated,
            },
        )
        return SlotsGenerated(
            created=created, updated=updated, skipped_blackout_days=sorted(blackouts)
        )

    async def slots(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        branch_id: uuid.UUID,
        first_day: date,
        last_day: date | None = None,
    ) -> list[Slot]:
        return list(
            await session.scalars(
                select(Slot)
                .where(
                    Slot.organisation_id == organisation_id,
                    Slot.branch_id == branch_id,
                    Slot.day.between(first_day, last_day or first_day),
                )
                .order_by(Slot.starts_at)
            )
        )

    async def add_blackout(
        self,
        session: AsyncSession,
        caller: Principal,
        branch_id: uuid.UUID,
        day: date,
        reason: str,
    ) -> tuple[Blackout, int]:
        """Close a day: its windows take no new bookings. Returns the live visits on it,
        which the front desk then reschedules (they are not moved silently)."""
        branch = await self.require_branch(session, caller, branch_id)
        blackout = await session.scalar(
            select(Blackout).where(Blackout.branch_id == branch.id, Blackout.day == day)
        )
        if blackout is None:
            blackout = Blackout(
                organisation_id=caller.organisation_id,
                branch_id=branch.id,
                day=day,
                reason=reason.strip(),
            )
            session.add(blackout)
        else:
            blackout.reason = reason.strip()
        await session.execute(
            update(Slot).where(Slot.branch_id == branch.id, Slot.day == day).values(closed=True)
        )
        await session.flush()
        live = await session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(
                Appointment.branch_id == branch.id,
                Appointment.day == day,
                Appointment.status.in_(ACTIVE_STATES),
            )
        )
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="appointments.blackout_added",
            entity_type="branch",
            entity_id=branch.id,
            after={"day": day, "reason": blackout.reason, "live_visits": live},
        )
        return blackout, int(live or 0)

    async def blackouts(
        self, session: AsyncSession, caller: Principal, branch_id: uuid.UUID
    ) -> list[Blackout]:
        return list(
            await session.scalars(
                select(Blackout)
                .where(
                    Blackout.organisation_id == caller.organisation_id,
                    Blackout.branch_id == branch_id,
                )
                .order_by(Blackout.day)
            )
        )

    async def set_preparation(
        self,
        session: AsyncSession,
        caller: Principal,
        test: str,
        fasting_hours: int,
        instructions: str | None,
    ) -> tuple[Preparation, CatalogTest]:
        resolved = await catalog_service.resolve_orderables(session, caller.organisation_id, [test])
        if len(resolved) != 1 or resolved[0].panel_id is not None:
            raise InvalidInput("Name one test (not a panel).", field="test")
        catalog_test = resolved[0].test
        row = await session.scalar(
            select(Preparation).where(
                Preparation.organisation_id == caller.organisation_id,
                Preparation.test_id == catalog_test.id,
            )
        )
        before = (
            {"fasting_hours": row.fasting_hours, "instructions": row.instructions} if row else None
        )
        if row is None:
            row = Preparation(organisation_id=caller.organisation_id, test_id=catalog_test.id)
            session.add(row)
        row.fasting_hours = fasting_hours
        row.instructions = (instructions or "").strip() or None
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="appointments.preparation_set",
            entity_type="catalog_test",
            entity_id=catalog_test.id,
            before=before,
            after={"fasting_hours": row.fasting_hours, "instructions": row.instructions},
        )
        return row, catalog_test

    async def preparations(
        self, session: AsyncSession, organisation_id: uuid.UUID
    ) -> list[tuple[Preparation, CatalogTest]]:
        rows = await session.execute(
            select(Preparation, CatalogTest)
            .join(CatalogTest, CatalogTest.id == Preparation.test_id)
            .where(Preparation.organisation_id == organisation_id)
            .order_by(CatalogTest.code)
        )
        return [(p, t) for p, t in rows.all()]

    async def bookable(
        self, session: AsyncSession, organisation_id: uuid.UUID
    ) -> list[domain.Bookable]:
        """Everything a patient can book from the link: active panels (whose tests are all
        active, else ordering them fails), then active tests by department — each with its
        preparation when the lab wrote one. Calculated tests (eGFR, LDL, ratios) are left
        out: they come with the tests they are computed from, nobody books them alone."""
        prepared = {
            t.id: (p.fasting_hours, p.instructions)
            for p, t in await self.preparations(session, organisation_id)
        }
        tests = list(
            await session.scalars(
                select(CatalogTest)
                .where(
                    CatalogTest.organisation_id == organisation_id,
                    CatalogTest.is_active.is_(True),
                    CatalogTest.result_type != ResultType.CALCULATED,
                )
                .order_by(CatalogTest.department, CatalogTest.sort_order, CatalogTest.code)
            )
        )
        members = await session.execute(
            select(Panel, CatalogTest)
            .join(PanelTest, PanelTest.panel_id == Panel.id)
            .join(CatalogTest, CatalogTest.id == PanelTest.test_id)
            .where(Panel.organisation_id == organisation_id, Panel.is_active.is_(True))
            .order_by(Panel.name, Panel.code, PanelTest.position, CatalogTest.code)
        )
        panels: dict[uuid.UUID, tuple[Panel, list[CatalogTest]]] = {}
        for panel, test in members.all():
            panels.setdefault(panel.id, (panel, []))[1].append(test)
        out = []
        for panel, inside in panels.values():
            if not all(t.is_active for t in inside):
                continue
            hours, text = domain.combined_preparation(
                prepared[t.id] for t in inside if t.id in prepared
            )
            out.append(domain.Bookable("panel", panel.code, panel.name, None, hours, text))
        for test in tests:
            hours, text = prepared.get(test.id, (0, None))
            out.append(domain.Bookable("test", test.code, test.name, test.department, hours, text))
        return out

    # ------------------------------------------------------------ what a visit needs

    async def needs(
        self, session: AsyncSession, organisation_id: uuid.UUID, items: Sequence[str]
    ) -> tuple[list[CatalogTest], list[domain.Tube], list[tuple[Preparation, CatalogTest]]]:
        """The tests behind ``items``, the tubes to carry (orders' grouping) and the
        preparation each asks for. Unknown items are a 422 listing them."""
        resolved = await catalog_service.resolve_orderables(session, organisation_id, list(items))
        tests = [r.test for r in resolved]
        tubes = domain.tubes_for((t.code, t.specimen_type, t.container) for t in tests)
        ids = [t.id for t in tests]
        preparation = [
            (p, t) for p, t in await self.preparations(session, organisation_id) if t.id in ids
        ]
        return tests, tubes, preparation

    # ------------------------------------------------------------ booking

    async def get_slot(
        self, session: AsyncSession, organisation_id: uuid.UUID, slot_id: uuid.UUID
    ) -> Slot:
        slot = await session.scalar(
            select(Slot).where(Slot.id == slot_id, Slot.organisation_id == organisation_id)
        )
        if slot is None:
            raise SlotNotFound("No such slot.", field="slot_id")
        return slot

    async def _take_place(self, session: AsyncSession, slot: Slot) -> None:
        """One place in ``slot``, or a refusal; atomic under concurrency (see module doc)."""
        if slot.closed:
            raise SlotClosed("This window is closed (blackout day); choose another.")
        if slot.starts_at <= utcnow():
            raise SlotClosed("This window has already started; choose a later one.")
        taken = await session.scalar(
            update(Slot)
            .where(Slot.id == slot.id, Slot.booked < Slot.capacity, Slot.closed.is_(False))
            .values(booked=Slot.booked + 1)
            .returning(Slot.booked)
            .execution_options(synchronize_session=False)
        )
        if taken is None:
            raise SlotFull("This window is fully booked; choose another.", slot_id=str(slot.id))
        await session.refresh(slot)

    async def _release_place(self, session: AsyncSession, slot_id: uuid.UUID) -> None:
        await session.execute(
            update(Slot)
            .where(Slot.id == slot_id, Slot.booked > 0)
            .values(booked=Slot.booked - 1)
            .execution_options(synchronize_session=False)
        )

    async def _check_served(
        self, session: AsyncSession, branch_id: uuid.UUID, pincode: str
    ) -> None:
        served = await session.scalar(
            select(ServiceArea.id).where(
                ServiceArea.branch_id == branch_id, ServiceArea.pincode == pincode
            )
        )
        if served is None:
            raise AreaNotServed(
                f"Pincode {pincode} is outside this branch's home-collection area.",
                field="pincode",
            )

    async def _refuse_second_visit(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        patient_id: uuid.UUID,
        day: date,
        exclude: uuid.UUID | None = None,
    ) -> None:
        statement = select(Appointment.id).where(
            Appointment.organisation_id == organisation_id,
            Appointment.patient_id == patient_id,
            Appointment.day == day,
            Appointment.status.in_(ACTIVE_STATES),
        )
        if exclude is not None:
            statement = statement.where(Appointment.id != exclude)
        other = await session.scalar(statement)
        if other is not None:
            raise AlreadyBooked(
                "This patient already has a home visit that day; reschedule it instead.",
                appointment_id=str(other),
            )

    async def book(
        self,
        session: AsyncSession,
        caller: Principal,
        data: BookingCreate,
        *,
        via: BookedVia = BookedVia.DESK,
    ) -> tuple[Appointment, bool]:
        """Book a home visit in a slot. Returns (appointment, created); a known client id
        is a replay. Refused: unknown tests, a pincode not served, a closed, started or
        full window, a second live visit of the patient that day."""
        org = caller.organisation_id
        if data.id is not None:
            existing = await session.get(Appointment, data.id)
            if existing is not None:
                if (
                    existing.organisation_id == org
                    and existing.slot_id == data.slot_id
                    and (existing.patient_id == data.patient_id)
                ):
                    return existing, False
                raise AlreadyBooked("This appointment id is already used for another booking.")
        slot = await self.get_slot(session, org, data.slot_id)
        branch = await self.require_branch(session, caller, slot.branch_id)
        try:
            patient = await patients_service.get(session, caller, data.patient_id)
        except NotFound:
            raise InvalidInput("Unknown patient.", field="patient_id") from None
        await self.needs(session, org, data.items)  # refuses unknown items before anything
        await self._check_served(session, branch.id, data.pincode)
        await self._refuse_second_visit(session, org, patient.id, slot.day)
        await self._take_place(session, slot)
        row = Appointment(
            organisation_id=org,
            branch_id=branch.id,
            slot_id=slot.id,
            day=slot.day,
            patient_id=patient.id,
            status=S.BOOKED,
            items=list(dict.fromkeys(i.strip() for i in data.items)),
            address=data.address.strip(),
            landmark=(data.landmark or "").strip() or None,
            pincode=data.pincode,
            latitude=data.latitude,
            longitude=data.longitude,
            notes=(data.notes or "").strip() or None,
            booked_via=via,
            booked_by_id=caller.id if caller.kind == "user" else None,
            status_times={S.BOOKED: utcnow().isoformat()},
        )
        if data.id is not None:
            row.id = data.id
        try:
            async with session.begin_nested():
                session.add(row)
                await session.flush()
        except IntegrityError:
            # Another transaction booked this patient on this day between our check and now.
            raise AlreadyBooked(
                "This patient already has a home visit that day; reschedule it instead."
            ) from None
        await audit_service.record(
            session,
            organisation_id=org,
            actor=caller.actor,
            action="appointment.booked",
            entity_type="appointment",
            entity_id=row.id,
            after=_snapshot(row),
        )
        await self._remind(session, row, slot)
        return row, True

    async def _remind(self, session: AsyncSession, row: Appointment, slot: Slot) -> None:
        """The evening-before and morning-of reminders (each created once per start time)."""
        place = row.address if not row.landmark else f"{row.address} (near {row.landmark})"
        place = place[:200]
        for occasion, at in (
            ("evening", None),
            ("morning", domain.morning_reminder_at(slot.starts_at)),
        ):
            await notifications_service.request_appointment_reminder(
                session,
                row.organisation_id,
                appointment_id=row.id,
                patient_id=row.patient_id,
                starts_at=slot.starts_at,
                place=place,
                send_at=at,
                occasion=occasion,
            )

    async def _load(
        self,
        session: AsyncSession,
        caller: Principal,
        appointment_id: uuid.UUID,
        *,
        lock: bool = True,
    ) -> Appointment:
        statement = select(Appointment).where(
            Appointment.id == appointment_id,
            Appointment.organisation_id == caller.organisation_id,
        )
        if lock:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        row = await session.scalar(statement)
        if row is None:
            raise AppointmentNotFound("No such appointment.")
        if not caller.may_use_branch(row.branch_id):
            raise OutsideYourBranches(
                "This appointment belongs to a branch you do not work at.", entity="appointment"
            )
        return row

    async def get(
        self, session: AsyncSession, caller: Principal, appointment_id: uuid.UUID
    ) -> Appointment:
        return await self._load(session, caller, appointment_id, lock=False)

    @staticmethod
    def _check_version(row: Appointment, version: int | None) -> None:
        from nidaan.kit.errors import check_version

        check_version(row.version, version, "appointment")

    async def reschedule(
        self,
        session: AsyncSession,
        caller: Principal,
        appointment_id: uuid.UUID,
        slot_id: uuid.UUID,
        reason: str,
        version: int | None = None,
    ) -> Appointment:
        """Move a visit that has not started to another window of the same branch; the old
        place is freed, the new one taken atomically, reminders follow the new time."""
        row = await self._load(session, caller, appointment_id)
        self._check_version(row, version)
        if row.status not in (S.BOOKED, S.ASSIGNED):
            raise IllegalVisitTransition(
                f"A visit that is {row.status.replace('_', ' ')} cannot be rescheduled."
            )
        if slot_id == row.slot_id:
            return row
        slot = await self.get_slot(session, caller.organisation_id, slot_id)
        if slot.branch_id != row.branch_id:
            raise InvalidInput("Choose a window of the same branch.", field="slot_id")
        await self._refuse_second_visit(
            session, caller.organisation_id, row.patient_id, slot.day, exclude=row.id
        )
        before = _snapshot(row)
        # Both windows locked in id order: two visits swapping windows cannot deadlock.
        await session.execute(
            select(Slot.id)
            .where(Slot.id.in_([row.slot_id, slot.id]))
            .order_by(Slot.id)
            .with_for_update()
        )
        await self._take_place(session, slot)
        await self._release_place(session, row.slot_id)
        moved_day = slot.day != row.day
        row.slot_id, row.day = slot.id, slot.day
        row.reschedule_count += 1
        row.status_reason = reason.strip()
        if moved_day and row.status == S.ASSIGNED:
            # Another day is another run: the visit waits to be assigned again.
            row.status, row.phlebotomist_id, row.run_position = S.BOOKED, None, None
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            raise AlreadyBooked("This patient already has a home visit that day.") from None
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="appointment.rescheduled",
            entity_type="appointment",
            entity_id=row.id,
            before=before,
            after={**_snapshot(row), "reason": reason.strip()},
        )
        await notifications_service.withdraw_pending(
            session,
            caller.organisation_id,
            subject_type="appointment",
            subject_id=row.id,
            reason="appointment rescheduled",
        )
        await self._remind(session, row, slot)
        return row

    async def cancel(
        self,
        session: AsyncSession,
        caller: Principal,
        appointment_id: uuid.UUID,
        reason: str,
        version: int | None = None,
    ) -> Appointment:
        row = await self._load(session, caller, appointment_id)
        self._check_version(row, version)
        if row.status == S.CANCELLED:
            return row
        if not domain.may_move(row.status, S.CANCELLED):
            raise IllegalVisitTransition(
                f"A visit that is {row.status.replace('_', ' ')} cannot be cancelled."
            )
        before = _snapshot(row)
        await self._release_place(session, row.slot_id)
        self._stamp(row, S.CANCELLED, utcnow(), reason)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="appointment.cancelled",
            entity_type="appointment",
            entity_id=row.id,
            before=before,
            after=_snapshot(row),
        )
        await notifications_service.withdraw_pending(
            session,
            caller.organisation_id,
            subject_type="appointment",
            subject_id=row.id,
            reason="appointment cancelled",
        )
        return row

    @staticmethod
    def _stamp(row: Appointment, status: VisitStatus, at: datetime, reason: str | None) -> None:
        row.status = status
        row.status_times = {**row.status_times, status.value: at.isoformat()}
        if reason is not None:
            row.status_reason = reason.strip() or None

    async def list(
        self,
        session: AsyncSession,
        caller: Principal,
        *,
        day: date | None,
        branch_id: uuid.UUID | None = None,
        status: str | None = None,
        phlebotomist_id: uuid.UUID | None = None,
    ) -> list[Appointment]:
        """The visits of ``day`` (None: from today on), in day, window and run order."""
        statement = select(Appointment).where(Appointment.organisation_id == caller.organisation_id)
        if day is None:
            statement = statement.where(Appointment.day >= utcnow().astimezone(IST).date())
        else:
            statement = statement.where(Appointment.day == day)
        if branch_id is not None:
            statement = statement.where(Appointment.branch_id == branch_id)
        if caller.branch_ids is not None:
            statement = statement.where(Appointment.branch_id.in_(caller.branch_ids))
        if status is not None:
            statement = statement.where(Appointment.status == status)
        if phlebotomist_id is not None:
            statement = statement.where(Appointment.phlebotomist_id == phlebotomist_id)
        statement = statement.join(Slot, Slot.id == Appointment.slot_id).order_by(
            Appointment.day, Slot.starts_at, Appointment.run_position.nulls_last(), Appointment.id
        )
        return list(await session.scalars(statement))

    # ------------------------------------------------------------ runs

    async def upcoming_of(
        self, session: AsyncSession, caller: Principal, patient_id: uuid.UUID
    ) -> list[Appointment]:
        """A patient's visits from today on that are not cancelled."""
        today = utcnow().astimezone(IST).date()
        return list(
            await session.scalars(
                select(Appointment)
                .where(
                    Appointment.organisation_id == caller.organisation_id,
                    Appointment.patient_id == patient_id,
                    Appointment.day >= today,
                    Appointment.status != S.CANCELLED,
                )
                .order_by(Appointment.day)
            )
        )

    async def phlebotomists(
        self, session: AsyncSession, organisation_id: uuid.UUID, branch_id: uuid.UUID
    ) -> list[User]:
        """Active phlebotomists who may work at the branch (no branch rows = every branch)."""
        limited = select(UserBranch.user_id).where(UserBranch.user_id == User.id)
        here = select(UserBranch.user_id).where(
            UserBranch.user_id == User.id, UserBranch.branch_id == branch_id
        )
        return list(
            await session.scalars(
                select(User)
                .where(
                    User.organisation_id == organisation_id,
                    User.is_active.is_(True),
                    any_(User.roles) == Role.PHLEBOTOMIST.value,
                    ~limited.exists() | here.exists(),
                )
                .order_by(User.full_name, User.id)
            )
        )

    async def phlebotomist_for_run(
        self, session: AsyncSession, caller: Principal, user_id: uuid.UUID
    ) -> User:
        """A phlebotomist whose run the caller may see: same organisation (else 404), and
        working at a branch the caller works at (else 403)."""
        person = await session.get(User, user_id)
        if person is None or person.organisation_id != caller.organisation_id:
            raise NotFound("No such phlebotomist.")
        branches = set(
            await session.scalars(select(UserBranch.branch_id).where(UserBranch.user_id == user_id))
        )
        if branches and caller.branch_ids is not None and not branches & caller.branch_ids:
            raise OutsideYourBranches(
                "This phlebotomist works at a branch you do not work at.", entity="run"
            )
        return person

    async def suggest(
        self, session: AsyncSession, caller: Principal, branch_id: uuid.UUID, day: date
    ) -> tuple[list[User], list[tuple[Appointment, Slot, uuid.UUID | None]]]:
        """A proposed run for each phlebotomist (nothing is saved: a person confirms it
        through ``assign``)."""
        branch = await self.require_branch(session, caller, branch_id)
        people = await self.phlebotomists(session, caller.organisation_id, branch.id)
        rows = (
            await session.execute(
                select(Appointment, Slot)
                .join(Slot, Slot.id == Appointment.slot_id)
                .where(
                    Appointment.branch_id == branch.id,
                    Appointment.day == day,
                    Appointment.status.in_((S.BOOKED, S.ASSIGNED)),
                )
                .order_by(Slot.starts_at, Appointment.id)
            )
        ).all()
        per_window = max((slot.visits_per_phlebotomist for _, slot in rows), default=1)
        plan = domain.suggest_assignment(
            [domain.VisitToPlace(a.id, s.starts_at, a.pincode, a.phlebotomist_id) for a, s in rows],
            [p.id for p in people],
            per_window,
        )
        return people, [(a, s, plan.get(a.id)) for a, s in rows]

    async def assign(
        self,
        session: AsyncSession,
        caller: Principal,
        assignments: Sequence[tuple[uuid.UUID, uuid.UUID | None, int | None]],
    ) -> list[Appointment]:
        """Put visits on phlebotomists' runs (or take them off), in the given order."""
        done = []
        for appointment_id, phlebotomist_id, position in assignments:
            row = await self._load(session, caller, appointment_id)
            if row.status not in (S.BOOKED, S.ASSIGNED):
                raise IllegalVisitTransition(
                    f"A visit that is {row.status.replace('_', ' ')} cannot be reassigned."
                )
            before = _snapshot(row)
            if phlebotomist_id is None:
                row.phlebotomist_id, row.run_position = None, None
                self._stamp(row, S.BOOKED, utcnow(), None)
            else:
                people = await self.phlebotomists(session, caller.organisation_id, row.branch_id)
                if phlebotomist_id not in {p.id for p in people}:
                    raise InvalidInput(
                        "Not an active phlebotomist of this branch.", field="phlebotomist_id"
                    )
                row.phlebotomist_id, row.run_position = phlebotomist_id, position
                self._stamp(row, S.ASSIGNED, utcnow(), None)
            await session.flush()
            await audit_service.record(
                session,
                organisation_id=caller.organisation_id,
                actor=caller.actor,
                action="appointment.assigned",
                entity_type="appointment",
                entity_id=row.id,
                before=before,
                after=_snapshot(row),
            )
            done.append(row)
        return done

    async def advance(
        self,
        session: AsyncSession,
        caller: Principal,
        appointment_id: uuid.UUID,
        to: VisitStatus | str,
        *,
        at: datetime | None = None,
        reason: str | None = None,
        version: int | None = None,
    ) -> Appointment:
        """A step at the door: on the way, arrived, patient not available, refused. The
        time is the phone's (offline) when given. The same step twice changes nothing."""
        target = VisitStatus(to)
        if target in (S.COLLECTED, S.CANCELLED, S.BOOKED, S.ASSIGNED):
            raise InvalidInput("Use collect, cancel or assign for that.", field="to")
        row = await self._load(session, caller, appointment_id)
        if row.status == target:
            return row
        self._check_version(row, version)
        if not domain.may_move(row.status, target):
            raise IllegalVisitTransition(
                f"A visit that is {row.status.replace('_', ' ')} cannot become "
                f"{target.replace('_', ' ')}."
            )
        if target in (S.NOT_AVAILABLE, S.REFUSED) and not (reason or "").strip():
            raise InvalidInput("Say why (what the patient or family said).", field="reason")
        when = self._when(at)
        before = _snapshot(row)
        self._stamp(row, target, when, reason)
        if target in (S.NOT_AVAILABLE, S.REFUSED):
            await self._release_place(session, row.slot_id)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action=f"appointment.{target.value}",
            entity_type="appointment",
            entity_id=row.id,
            before=before,
            after=_snapshot(row),
        )
        if target is S.ON_THE_WAY:
            await self._announce_on_the_way(session, row)
        return row

    async def _announce_on_the_way(self, session: AsyncSession, row: Appointment) -> None:
        slot = await session.get(Slot, row.slot_id)
        person = await session.get(User, row.phlebotomist_id) if row.phlebotomist_id else None
        assert slot is not None
        await notifications_service.notify_on_the_way(
            session,
            row.organisation_id,
            appointment_id=row.id,
            patient_id=row.patient_id,
            phlebotomist_name=person.full_name if person else "",
            window=domain.window_text(slot.starts_at, slot.ends_at),
            reschedule_link=await self.reschedule_link(session, row),
        )

    async def reschedule_link(self, session: AsyncSession, row: Appointment) -> str:
        settings = get_settings()
        base = (settings.public_base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        organisation = await session.get(Organisation, row.organisation_id)
        branch = await session.get(Branch, row.branch_id)
        assert organisation is not None
        assert branch is not None
        return f"{base}/book/{organisation.slug}/{branch.code}?appointment={row.id}"

    @staticmethod
    def _when(at: datetime | None) -> datetime:
        now = utcnow()
        if at is None:
            return now
        if at.tzinfo is None:
            raise InvalidInput("The time needs a time zone.", field="at")
        if at > now + CLOCK_SKEW:
            raise InvalidInput("The time is in the future.", field="at")
        return at

    async def bind_label(
        self,
        session: AsyncSession,
        caller: Principal,
        appointment_id: uuid.UUID,
        sample: str | None,
        label: str,
        *,
        container: str | None = None,
        specimen_type: str | None = None,
    ) -> Sample:
        """Scan to bind at the door: a pre-printed label goes on one of this visit's tubes,
        named by sample id or accession, or — from a phone that collected offline and has
        not seen the accessions yet — by the tube's container (and specimen type when two
        tubes share a container). The samples module refuses a label bound elsewhere."""
        row = await self._load(session, caller, appointment_id, lock=False)
        tubes = await samples_service.for_orders(
            session, caller.organisation_id, [row.order_id] if row.order_id else []
        )
        if sample is not None:
            mine = [t for t in tubes if sample in (str(t.id), t.accession)]
        else:
            mine = [
                t
                for t in tubes
                if t.container == container
                and specimen_type in (None, t.specimen_type)
                and t.status != SampleStatus.REJECTED
            ]
        if not mine:
            raise InvalidInput(
                "That tube is not one of this visit's tubes (collect the visit first).",
                field="sample",
            )
        if len(mine) > 1:
            raise InvalidInput(
                "Two tubes of this visit share that container: name the specimen or accession.",
                field="sample",
            )
        return await samples_service.bind_label(session, caller, mine[0].id, label)

    async def collect(
        self, session: AsyncSession, caller: Principal, appointment_id: uuid.UUID, data: CollectIn
    ) -> tuple[Appointment, list[str]]:
        """At the door: the visit becomes an order (the booked tests, one sample per tube,
        numbered by the branch's accession sequence), every sample collected at the given
        time, and the payment taken (cash or UPI) recorded on the order's invoice, whose
        receipt goes to the patient. A replay with the same order id changes nothing."""
        row = await self._load(session, caller, appointment_id)
        if row.status == S.COLLECTED:
            if data.order_id is not None and data.order_id != row.order_id:
                raise IllegalVisitTransition("This visit was collected under another order.")
            samples = await samples_service.for_orders(
                session, caller.organisation_id, [row.order_id] if row.order_id else []
            )
            return row, [s.accession for s in samples]
        self._check_version(row, data.version)
        if row.status not in (S.ARRIVED, S.ON_THE_WAY, S.ASSIGNED):
            raise IllegalVisitTransition(
                f"A visit that is {row.status.replace('_', ' ')} cannot be collected."
            )
        when = self._when(data.collected_at)
        before = _snapshot(row)
        order, _ = await orders_service.create_or_replay(
            session,
            caller,
            OrderCreate(
                id=data.order_id or new_id(),
                patient_id=row.patient_id,
                branch_id=row.branch_id,
                items=list(row.items),
            ),
        )
        samples = await samples_service.for_orders(session, caller.organisation_id, [order.id])
        for sample in samples:
            if sample.status == SampleStatus.ORDERED:
                await samples_service.collect(
                    session, caller, sample.id, branch_id=row.branch_id, collected_at=when
                )
        await self._home_collection_invoice(session, caller, order.id)
        payment_id = None
        if data.payment is not None:
            payment, _ = await counter_service.record_payment(
                session,
                caller,
                order_id=order.id,
                amount=data.payment.amount,
                method=data.payment.method,
                reference=data.payment.reference,
                received_at=when,
                payment_id=data.payment.id,
            )
            payment_id = payment.id
        row.order_id, row.payment_id = order.id, payment_id
        if S.ARRIVED not in row.status_times:
            row.status_times = {**row.status_times, S.ARRIVED.value: when.isoformat()}
        self._stamp(row, S.COLLECTED, when, None)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="appointment.collected",
            entity_type="appointment",
            entity_id=row.id,
            before=before,
            after=_snapshot(row),
        )
        return row, [s.accession for s in samples]

    @staticmethod
    async def _home_collection_invoice(
        session: AsyncSession, caller: Principal, order_id: uuid.UUID
    ) -> None:
        """The order's invoice with the lab's home-collection charge (per visit, waived above
        the order value the billing settings name). If billing cannot invoice yet (no GST
        state set), the collection still stands and a payment taken is held for review."""
        if await billing_service.live_invoice_for_order(session, caller.organisation_id, order_id):
            return
        try:
            async with session.begin_nested():
                await billing_service.create_order_invoice(
                    session, caller, InvoiceCreate(order_id=order_id, home_collection=True)
                )
        except NidaanError as exc:
            logger.info("No home-collection invoice for order %s: %s", order_id, exc.code)

    async def dashboard(
        self,
        session: AsyncSession,
        caller: Principal,
        first_day: date,
        last_day: date,
        branch_id: uuid.UUID | None = None,
    ) -> tuple[dict[str, Counter[str]], dict[str, Counter[str]]]:
        """Visits, no-shows (patient not available) and late arrivals (after the window)
        per phlebotomist and per pincode."""
        statement = (
            select(Appointment, Slot.ends_at, User.full_name)
            .join(Slot, Slot.id == Appointment.slot_id)
            .outerjoin(User, User.id == Appointment.phlebotomist_id)
            .where(
                Appointment.organisation_id == caller.organisation_id,
                Appointment.day.between(first_day, last_day),
                Appointment.status != S.CANCELLED,
            )
        )
        if branch_id is not None:
            statement = statement.where(Appointment.branch_id == branch_id)
        if caller.branch_ids is not None:
            statement = statement.where(Appointment.branch_id.in_(caller.branch_ids))
        people: dict[str, Counter[str]] = {}
        areas: dict[str, Counter[str]] = {}
        for row, ends_at, name in (await session.execute(statement)).all():
            arrived = row.status_times.get(S.ARRIVED)
            late = arrived is not None and domain.is_late(datetime.fromisoformat(arrived), ends_at)
            for table, key in ((people, name or "unassigned"), (areas, row.pincode)):
                counts = table.setdefault(key, Counter())
                counts["visits"] += 1
                counts["not_available"] += row.status == S.NOT_AVAILABLE
                counts["late_arrivals"] += late
        return people, areas


appointments_service = AppointmentsService()
