"""Request and response shapes of home collection."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, model_validator

from nidaan.appointments.enums import VisitStatus
from nidaan.kit.schemas import InputSchema, Schema
from nidaan.patients.schemas import PatientCreate

PINCODE = r"^[1-9][0-9]{5}$"
VERSION = "The version you last saw; a stale one is a 409 version_conflict"


# ---------------------------------------------------------------- configuration


class AreasIn(InputSchema):
    pincodes: list[str] = Field(
        min_length=1,
        max_length=500,
        description="Pincodes the branch serves",
        examples=[["560001"]],
    )

    @model_validator(mode="after")
    def _pincodes(self) -> AreasIn:
        import re

        bad = [p for p in self.pincodes if not re.fullmatch(PINCODE, p)]
        if bad:
            raise ValueError(f"not 6-digit Indian pincodes: {', '.join(bad[:5])}")
        return self


class AreasOut(Schema):
    branch_id: uuid.UUID
    pincodes: list[str]


class AreaOut(Schema):
    id: uuid.UUID
    branch_id: uuid.UUID
    pincode: str
    name: str | None


class WindowIn(InputSchema):
    start: time = Field(examples=["07:00"])
    end: time = Field(examples=["08:00"])

    @model_validator(mode="after")
    def _order(self) -> WindowIn:
        if self.end <= self.start:
            raise ValueError("a window must end after it starts")
        return self


class SlotsGenerate(InputSchema):
    """Open (or resize) the windows of every day from ``first_day`` to ``last_day``."""

    first_day: date
    last_day: date
    windows: list[WindowIn] = Field(min_length=1, max_length=24)
    phlebotomists: int = Field(ge=0, le=500, description="Phlebotomists on the road")
    visits_per_phlebotomist: int = Field(ge=1, le=20, description="Visits one makes per window")

    @model_validator(mode="after")
    def _range(self) -> SlotsGenerate:
        if self.last_day < self.first_day:
            raise ValueError("last_day is before first_day")
        if (self.last_day - self.first_day).days > 62:
            raise ValueError("open at most 63 days at once")
        return self


class SlotOut(Schema):
    id: uuid.UUID
    branch_id: uuid.UUID
    day: date
    starts_at: datetime
    ends_at: datetime
    phlebotomists: int
    visits_per_phlebotomist: int
    capacity: int
    booked: int
    available: int
    closed: bool


class SlotsGenerated(Schema):
    created: int
    updated: int
    skipped_blackout_days: list[date]


class BlackoutIn(InputSchema):
    day: date
    reason: str = Field(min_length=1, max_length=200)


class BlackoutOut(Schema):
    id: uuid.UUID
    branch_id: uuid.UUID
    day: date
    reason: str
    visits_to_move: int = Field(description="Live bookings on that day that need rescheduling")


class PreparationIn(InputSchema):
    test: str = Field(description="Catalog test id or code", examples=["GLU-F"])
    fasting_hours: int = Field(ge=0, le=24)
    instructions: str | None = Field(None, max_length=500)


class PreparationOut(Schema):
    test_code: str
    test_name: str
    fasting_hours: int
    instructions: str | None


# ---------------------------------------------------------------- booking


class Address(InputSchema):
    address: str = Field(min_length=3, max_length=500)
    landmark: str | None = Field(None, max_length=200)
    pincode: str = Field(pattern=PINCODE)
    latitude: Decimal | None = Field(None, ge=-90, le=90, decimal_places=6)
    longitude: Decimal | None = Field(None, ge=-180, le=180, decimal_places=6)


class BookingCreate(Address):
    id: uuid.UUID | None = Field(None, description="Client-made UUIDv7 (a retry is a replay)")
    slot_id: uuid.UUID
    patient_id: uuid.UUID
    items: list[str] = Field(min_length=1, max_length=50, examples=[["CBC", "GLU-F"]])
    notes: str | None = Field(None, max_length=500)


class Reschedule(InputSchema):
    slot_id: uuid.UUID
    reason: str = Field(min_length=1, max_length=300)
    version: int | None = Field(None, description=VERSION)


class Cancel(InputSchema):
    reason: str = Field(min_length=1, max_length=300)
    version: int | None = Field(None, description=VERSION)


class TubeOut(Schema):
    specimen_type: str
    container: str
    tests: list[str]


class AppointmentOut(Schema):
    id: uuid.UUID
    branch_id: uuid.UUID
    slot_id: uuid.UUID
    day: date
    starts_at: datetime
    ends_at: datetime
    patient_id: uuid.UUID
    patient_name: str
    mobile: str | None = Field(description="Masked")
    status: VisitStatus
    booked_tests: list[str] = Field(description="Tests and panels booked, as entered")
    address: str
    landmark: str | None
    pincode: str
    latitude: Decimal | None
    longitude: Decimal | None
    notes: str | None
    booked_via: str
    phlebotomist_id: uuid.UUID | None
    phlebotomist_name: str | None
    run_position: int | None
    status_times: dict[str, Any]
    status_reason: str | None
    reschedule_count: int
    order_id: uuid.UUID | None
    payment_id: uuid.UUID | None
    tubes: list[TubeOut]
    preparation: list[PreparationOut]
    fasting_hours: int = Field(description="Longest fast any test asks for")
    version: int


# ---------------------------------------------------------------- runs


class AssignmentIn(InputSchema):
    appointment_id: uuid.UUID
    phlebotomist_id: uuid.UUID | None = Field(description="None takes the visit off a run")
    run_position: int | None = Field(None, ge=1, le=1000)


class AssignIn(InputSchema):
    assignments: list[AssignmentIn] = Field(min_length=1, max_length=500)


class AssignedOut(Schema):
    appointments: list[AppointmentOut]


class SuggestionOut(Schema):
    appointment_id: uuid.UUID
    phlebotomist_id: uuid.UUID | None
    pincode: str
    starts_at: datetime


class PersonOut(Schema):
    id: uuid.UUID
    full_name: str


PhlebotomistOut = PersonOut


class SuggestionsOut(Schema):
    day: date
    phlebotomists: list[PhlebotomistOut]
    suggestions: list[SuggestionOut]


class TubeCount(Schema):
    specimen_type: str
    container: str
    count: int


class RunSheetOut(Schema):
    day: date
    phlebotomist: PhlebotomistOut
    visits: list[AppointmentOut]
    tubes_total: list[TubeCount] = Field(description="Tubes to carry for the whole run")


class VisitStatusIn(InputSchema):
    to: Literal["on_the_way", "arrived", "not_available", "refused"]
    at: datetime | None = Field(None, description="When it happened (offline: the phone's time)")
    reason: str | None = Field(None, max_length=300)
    version: int | None = Field(None, description=VERSION)


class DoorPayment(InputSchema):
    id: uuid.UUID | None = Field(None, description="Client-made id: a replay is not a 2nd payment")
    amount: Decimal = Field(gt=0, decimal_places=2)
    method: Literal["cash", "upi", "card"]
    reference: str | None = Field(None, max_length=100, description="UPI reference (UTR)")


class CollectIn(InputSchema):
    order_id: uuid.UUID | None = Field(None, description="Client-made id of the order to create")
    collected_at: datetime | None = None
    payment: DoorPayment | None = None
    version: int | None = Field(None, description=VERSION)


class CollectedOut(Schema):
    appointment: AppointmentOut
    order_id: uuid.UUID
    accessions: list[str]
    payment_id: uuid.UUID | None


class CountsRow(Schema):
    key: str
    visits: int
    not_available: int
    late_arrivals: int


class DashboardOut(Schema):
    first_day: date
    last_day: date
    by_phlebotomist: list[CountsRow]
    by_pincode: list[CountsRow]


# ---------------------------------------------------------------- patient link


class CodeRequest(InputSchema):
    mobile: str = Field(description="Indian mobile number", examples=["98765 43210"])
    language: Literal["en", "hi"] = "en"


class CodeSent(Schema):
    expires_at: datetime
    mobile: str = Field(description="Masked")


class CodeVerify(InputSchema):
    mobile: str
    code: str = Field(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")


class BookingToken(Schema):
    token: str = Field(description="Send as X-Booking-Token; valid 30 minutes")
    expires_at: datetime
    patients: list[PersonOut] = Field(description="Patients registered with this mobile")


class PublicBooking(Address):
    mobile: str = Field(description="The number you verified")
    slot_id: uuid.UUID
    items: list[str] = Field(min_length=1, max_length=50)
    patient_id: uuid.UUID | None = Field(None, description="One of the token's patients")
    new_patient: PatientCreate | None = Field(None, description="Register (mobile = verified)")
    reminders: bool = Field(True, description="Agree to reminders by SMS/WhatsApp")

    @model_validator(mode="after")
    def _who(self) -> PublicBooking:
        if (self.patient_id is None) == (self.new_patient is None):
            raise ValueError("give patient_id or new_patient")
        return self


class PublicSlot(Schema):
    id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    available: int


class PublicTest(Schema):
    """A test or panel the patient may book, with its preparation when it has any."""

    kind: Literal["panel", "test"] = Field(description="Panels (packages) come first")
    code: str
    name: str
    department: str | None = Field(description="Tests only")
    fasting_hours: int = Field(description="0 = no fasting needed")
    instructions: str | None = Field(description="The lab's preparation instructions, if any")


class PublicAppointment(Schema):
    id: uuid.UUID
    status: VisitStatus
    starts_at: datetime
    ends_at: datetime
    booked_tests: list[str]
    fasting_hours: int
    preparation: list[PreparationOut]
