"""Home-collection tables: service areas (pincodes per branch), slots with a capacity and a
booked count kept by atomic updates, blackout days, per-test preparation (fasting), the
visits themselves, and the one-time codes of the patient booking link."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin


class ServiceArea(IdMixin, TenantMixin, TimestampMixin, Base):
    """A pincode a branch's phlebotomists go to."""

    __tablename__ = "appointment_areas"
    __table_args__ = (UniqueConstraint("branch_id", "pincode"),)

    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"), index=True)
    pincode: Mapped[str] = mapped_column(String(6))
    name: Mapped[str | None] = mapped_column(String(120))


class Slot(IdMixin, TenantMixin, TimestampMixin, Base):
    """A collection window of one branch on one day. ``capacity`` = phlebotomists x visits
    each; ``booked`` only moves by ``UPDATE ... WHERE booked < capacity`` (never over)."""

    __tablename__ = "appointment_slots"
    __table_args__ = (
        UniqueConstraint("branch_id", "starts_at"),
        CheckConstraint("booked >= 0 AND booked <= capacity", name="booked_within_capacity"),
        CheckConstraint("ends_at > starts_at", name="window_positive"),
        Index("ix_appointment_slots_branch_day", "branch_id", "day"),
    )

    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"))
    day: Mapped[date]  # the lab's (IST) day
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    phlebotomists: Mapped[int] = mapped_column(Integer)
    visits_per_phlebotomist: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, server_default="0")
    closed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class Blackout(IdMixin, TenantMixin, TimestampMixin, Base):
    """A day a branch makes no home visits (a holiday, a strike)."""

    __tablename__ = "appointment_blackouts"
    __table_args__ = (UniqueConstraint("branch_id", "day"),)

    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"))
    day: Mapped[date]
    reason: Mapped[str] = mapped_column(String(200))


class Preparation(IdMixin, TenantMixin, TimestampMixin, Base):
    """What the patient must do before a test's sample is drawn (shown at booking)."""

    __tablename__ = "appointment_preparations"
    __table_args__ = (UniqueConstraint("organisation_id", "test_id"),)

    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"))
    fasting_hours: Mapped[int] = mapped_column(Integer, server_default="0")
    instructions: Mapped[str | None] = mapped_column(String(500))


class Appointment(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """One home visit. A patient has at most one live visit per day (partial unique index)."""

    __tablename__ = "appointments"
    __table_args__ = (
        Index(
            "uq_appointments_patient_day_live",
            "organisation_id",
            "patient_id",
            "day",
            unique=True,
            postgresql_where=text("status IN ('booked', 'assigned', 'on_the_way', 'arrived')"),
        ),
        Index("ix_appointments_branch_day", "branch_id", "day"),
        Index("ix_appointments_phlebotomist_day", "phlebotomist_id", "day"),
    )

    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"))
    slot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointment_slots.id"), index=True)
    day: Mapped[date]
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    items: Mapped[list[str]] = mapped_column(JSONB)  # catalog test/panel codes, as ordered
    address: Mapped[str] = mapped_column(String(500))
    landmark: Mapped[str | None] = mapped_column(String(200))
    pincode: Mapped[str] = mapped_column(String(6))
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    notes: Mapped[str | None] = mapped_column(String(500))
    booked_via: Mapped[str] = mapped_column(String(16))
    booked_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    phlebotomist_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    run_position: Mapped[int | None] = mapped_column(Integer)
    #: status -> ISO time it was reached (what the run sheet and the dashboard show).
    status_times: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    status_reason: Mapped[str | None] = mapped_column(String(300))
    reschedule_count: Mapped[int] = mapped_column(Integer, server_default="0")
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id"))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("counter_payments.id"))


class OneTimeCode(IdMixin, TenantMixin, Base):
    """A code sent to a mobile number for the patient booking link; only its hash is kept.
    Once verified it yields a short-lived booking token (also kept as a hash)."""

    __tablename__ = "appointment_otps"
    __table_args__ = (Index("ix_appointment_otps_mobile", "organisation_id", "mobile_index"),)

    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"))
    mobile_index: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    verified_at: Mapped[datetime | None]
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime | None]
