"""QC tables: materials, lots (per analyte and instrument), rule switches per analyte, runs,
results with z-scores, violations (never deleted) and corrective actions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin


class QcMaterial(IdMixin, TenantMixin, TimestampMixin, Base):
    """A control product at one level (e.g. "Lyphochek Assayed Chemistry", level 2)."""

    __tablename__ = "qc_materials"
    __table_args__ = (UniqueConstraint("organisation_id", "name", "level"),)

    name: Mapped[str] = mapped_column(String(200))
    manufacturer: Mapped[str | None] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(32))


class QcLot(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """One lot of a material as used for one analyte on one instrument, with its target.

    States: ``establishing`` (collecting the first N runs to set the lab's own mean and SD)
    -> ``active`` -> ``expired``. With manufacturer targets a lot starts ``active``.
    """

    __tablename__ = "qc_lots"
    __table_args__ = (
        # The analyzer names a control by the id it sends: one live lot per id and analyte.
        Index(
            "uq_qc_lots_live_control",
            "instrument_id",
            "test_id",
            "control_id",
            unique=True,
            postgresql_where=text("state <> 'expired'"),
        ),
    )

    material_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("qc_materials.id"), index=True)
    lot_number: Mapped[str] = mapped_column(String(64))
    expires_on: Mapped[date]
    instrument_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instruments.id"), index=True)
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"), index=True)
    # The sample id the analyzer sends for this control (its QC position or barcode).
    control_id: Mapped[str] = mapped_column(String(64))
    target_source: Mapped[str] = mapped_column(String(16))
    mean: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    sd: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    establish_runs: Mapped[int] = mapped_column(Integer, server_default="20")
    state: Mapped[str] = mapped_column(String(16), index=True)
    activated_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]


class QcRuleSetting(IdMixin, TenantMixin, TimestampMixin, Base):
    """Which Westgard rules apply to an analyte (off / warning / reject), and whether a
    rejection requires re-running the patient results it blocked."""

    __tablename__ = "qc_rule_settings"
    __table_args__ = (UniqueConstraint("organisation_id", "test_id"),)

    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"))
    rules: Mapped[dict[str, str]] = mapped_column(JSONB)
    require_rerun: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # QC results of one instrument and analyte this close together form one run.
    run_window_minutes: Mapped[int] = mapped_column(Integer, server_default="60")


class QcRun(IdMixin, TenantMixin, Base):
    """The controls of one analyte measured together on one instrument (all levels)."""

    __tablename__ = "qc_runs"
    __table_args__ = (
        Index("ix_qc_runs_instrument_test_started", "instrument_id", "test_id", "started_at"),
    )

    instrument_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instruments.id"))
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"))
    started_at: Mapped[datetime]
    # pending (not every level measured yet), passed, warning, rejected.
    outcome: Mapped[str] = mapped_column(String(16))


class QcResult(IdMixin, TenantMixin, Base):
    """One control measurement with its z-score and what the rules made of it."""

    __tablename__ = "qc_results"
    __table_args__ = (Index("ix_qc_results_lot_measured", "lot_id", "measured_at"),)

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("qc_runs.id"), index=True)
    lot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("qc_lots.id"))
    instrument_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instruments.id"))
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"))
    value: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    unit: Mapped[str | None] = mapped_column(String(32))
    # (value - mean) / SD against the lot's target; empty while the lot is establishing.
    z: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    measured_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("interface_messages.id"))
    entered_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    # establishing, accepted, warning, rejected.
    outcome: Mapped[str] = mapped_column(String(16))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class QcUnmatched(IdMixin, TenantMixin, Base):
    """A control result from an analyzer that no live lot claims (kept, never dropped)."""

    __tablename__ = "qc_unmatched"

    instrument_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instruments.id"), index=True)
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("interface_messages.id"))
    control_id: Mapped[str] = mapped_column(String(64))
    instrument_code: Mapped[str] = mapped_column(String(64))
    test_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("catalog_tests.id"))
    value: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(32))
    measured_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class QcCorrectiveAction(IdMixin, TenantMixin, Base):
    """What a person did about a rejection (recalibration, new reagent, ...)."""

    __tablename__ = "qc_corrective_actions"

    instrument_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instruments.id"), index=True)
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"))
    action: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(String(1000))
    require_rerun: Mapped[bool] = mapped_column(Boolean, server_default="false")
    performed_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    performed_at: Mapped[datetime]


class QcViolation(IdMixin, TenantMixin, Base):
    """A Westgard rule a control result broke. Never deleted (a trigger refuses it); the
    only change allowed is answering it with a corrective action."""

    __tablename__ = "qc_violations"
    __table_args__ = (Index("ix_qc_violations_instrument_test", "instrument_id", "test_id"),)

    qc_result_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("qc_results.id"), index=True)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("qc_runs.id"))
    lot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("qc_lots.id"))
    instrument_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instruments.id"))
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"))
    rule: Mapped[str] = mapped_column(String(8))
    severity: Mapped[str] = mapped_column(String(8))
    # within_run, across_runs (one level) or across_levels.
    scope: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(300))
    # The z-scores of the points that make the pattern, oldest first.
    z_values: Mapped[list[float]] = mapped_column(JSONB)
    corrective_action_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("qc_corrective_actions.id")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
