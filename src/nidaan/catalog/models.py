"""Catalogue tables. Ranges are rows with conditions (sex, age band in days, pregnancy)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, Numeric, String, Text, UniqueConstraint, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin


class CatalogTest(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    __tablename__ = "catalog_tests"
    __table_args__ = (UniqueConstraint("organisation_id", "code"),)

    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    loinc: Mapped[str | None] = mapped_column(String(16), index=True)
    department: Mapped[str] = mapped_column(String(64))
    specimen_type: Mapped[str] = mapped_column(String(64))
    container: Mapped[str] = mapped_column(String(64))
    method: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(32))
    # Other units a result may be entered in: {"mmol/L": "18.016"} means value * factor.
    unit_conversions: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    result_type: Mapped[str] = mapped_column(String(16))
    decimals: Mapped[int] = mapped_column(Integer, server_default="0")
    # Calculated tests: an arithmetic expression over other tests' codes, e.g. "CHOL - HDL - TG/5".
    formula: Mapped[str | None] = mapped_column(Text)
    # Coded tests: [{"code": "POS", "text": "Positive", "abnormal": true}, ...].
    choices: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    tat_minutes: Mapped[int] = mapped_column(Integer, server_default="1440")
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default="0")
    required_verifications: Mapped[int] = mapped_column(Integer, server_default="1")
    # Delta check: hold a result that moved more than this since the patient's last one.
    delta_percent: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    delta_absolute: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    delta_window_days: Mapped[int | None] = mapped_column(Integer)
    accredited: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # Tests sent out: the laboratory that performs them, printed beside the result.
    referral_lab: Mapped[str | None] = mapped_column(String(200))
    # Hours a sample stays fit for this test from collection to receipt, when stricter than
    # its container's default (samples/stability.py); None = the container decides.
    stability_hours: Mapped[int | None] = mapped_column(Integer)
    sort_order: Mapped[int] = mapped_column(Integer, server_default="0")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())


class ReferenceRange(IdMixin, TenantMixin, Base):
    """One band of a test's reference interval, applying when all its conditions match.

    Ages are in days (inclusive lower, exclusive upper bound), so neonates work; the most
    specific matching row wins (see catalog/domain.py).
    """

    __tablename__ = "catalog_reference_ranges"

    test_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("catalog_tests.id", ondelete="CASCADE"), index=True
    )
    sex: Mapped[str | None] = mapped_column(String(16))
    age_min_days: Mapped[int | None] = mapped_column(Integer)
    age_max_days: Mapped[int | None] = mapped_column(Integer)
    pregnant: Mapped[bool | None] = mapped_column(Boolean)
    low: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    high: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    critical_low: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    critical_high: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    # Printed instead of low-high when set, e.g. "< 200 desirable; 200-239 borderline".
    text: Mapped[str | None] = mapped_column(String(300))


class Panel(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    __tablename__ = "catalog_panels"
    __table_args__ = (UniqueConstraint("organisation_id", "code"),)

    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default="0")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())


class PanelTest(Base):
    __tablename__ = "catalog_panel_tests"

    panel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("catalog_panels.id", ondelete="CASCADE"), primary_key=True
    )
    test_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("catalog_tests.id", ondelete="RESTRICT"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, server_default="0")
