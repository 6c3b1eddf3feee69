"""Result tables. A correction is a new row (version + 1); verified rows never change."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin


class Result(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("order_test_id", "result_version"),
        # At most one current result per ordered test.
        Index(
            "uq_results_current_per_order_test",
            "order_test_id",
            unique=True,
            postgresql_where=text("is_current"),
        ),
        Index("ix_results_patient_id_test_id", "patient_id", "test_id"),
    )

    order_test_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("order_tests.id", ondelete="CASCADE")
    )
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    sample_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("samples.id"))
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    # 1 for the first result; a correction adds a row with result_version + 1.
    result_version: Mapped[int] = mapped_column(Integer)
    is_current: Mapped[bool] = mapped_column(Boolean)
    supersedes_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("results.id"))
    correction_reason: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), index=True)
    source: Mapped[str] = mapped_column(String(16))
    # What was typed or sent, before conversion to the catalogue unit.
    entered_value: Mapped[str] = mapped_column(String(200))
    entered_unit: Mapped[str | None] = mapped_column(String(32))
    value_numeric: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    value_text: Mapped[str | None] = mapped_column(Text)
    value_code: Mapped[str | None] = mapped_column(String(32))
    unit: Mapped[str | None] = mapped_column(String(32))
    flag: Mapped[str | None] = mapped_column(String(2))
    # The interval that applied, copied so the report never changes when the catalogue does.
    reference_low: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    reference_high: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    reference_text: Mapped[str | None] = mapped_column(String(300))
    delta_failed: Mapped[bool] = mapped_column(Boolean, server_default="false")
    delta_previous_value: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    delta_previous_at: Mapped[datetime | None]
    hold_reason: Mapped[str | None] = mapped_column(String(300))
    instrument_flags: Mapped[str | None] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    entered_at: Mapped[datetime]
    entered_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    verified_at: Mapped[datetime | None]
    verified_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    # The analyzer that measured it (results landed from an instrument): quality control
    # gates verification per instrument and test.
    instrument_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("instruments.id", ondelete="SET NULL"), index=True
    )
    # Verified by the system actor under an autoverification rule set, not by a person.
    autoverified: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # Why it waits for a person (e.g. the autoverification rule that stopped it); shown on
    # the verification worklist. Cleared when the value changes.
    review_reason: Mapped[str | None] = mapped_column(String(300))


class VerificationGate(Base):
    """Something that keeps results of one instrument and test from being verified.

    Other modules place and lift gates through ``results.gates`` (quality control: "the
    latest QC run of this analyte on this analyzer failed") without results knowing them.
    While a gate stands, results of that instrument and test entered at or after ``since``
    cannot be verified, by a person or by the system.
    """

    __tablename__ = "result_verification_gates"

    instrument_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("instruments.id", ondelete="CASCADE"), primary_key=True
    )
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(32), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    reason: Mapped[str] = mapped_column(String(300))
    since: Mapped[datetime]
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime]


class ResultVerification(IdMixin, TenantMixin, Base):
    """One signature on a result; a test needing two verifications needs two people."""

    __tablename__ = "result_verifications"
    __table_args__ = (UniqueConstraint("result_id", "user_id"),)

    result_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("results.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    level: Mapped[int] = mapped_column(Integer)
    verified_at: Mapped[datetime]


class CriticalAlert(IdMixin, TenantMixin, TimestampMixin, Base):
    """A critical (panic) value that someone must phone through and record (ISO 15189 5.9.1)."""

    __tablename__ = "critical_alerts"

    result_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("results.id"), index=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"))
    value: Mapped[str] = mapped_column(String(200))
    flag: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16), index=True)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    notified_person: Mapped[str | None] = mapped_column(String(200))
    notified_at: Mapped[datetime | None]
    read_back: Mapped[bool | None] = mapped_column(Boolean)
    notes: Mapped[str | None] = mapped_column(String(1000))
