from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin


class Report(IdMixin, TenantMixin, Base):
    """One rendered version of an order's report; amendments add versions, none is deleted."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("order_id", "report_version"),
        UniqueConstraint("organisation_id", "report_number"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    report_number: Mapped[str] = mapped_column(String(40))
    report_version: Mapped[int] = mapped_column(Integer)
    is_current: Mapped[bool] = mapped_column(Boolean)
    supersedes_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("reports.id"))
    amended: Mapped[bool] = mapped_column(Boolean)
    amendment_reason: Mapped[str | None] = mapped_column(String(500))
    # provisional | final | amended | corrected (printed on every page; see reports/domain.py)
    status: Mapped[str] = mapped_column(String(16), server_default="final")
    # What this version changed against the one it replaced, as printed ("Potassium: corrected").
    changes: Mapped[str | None] = mapped_column(Text)
    # The verified result rows it prints (what the next version is compared with).
    result_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(Uuid()))
    language: Mapped[str] = mapped_column(String(8))
    storage_key: Mapped[str] = mapped_column(String(300))
    # The PDF's file record (access rules, soft delete, retention); set for every report
    # issued by the service and back-filled by migration 0013 for older ones.
    file_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("files.id"), index=True)
    # Which verified results it prints (see reports.domain.source_fingerprint), 128 bits.
    source_fingerprint: Mapped[str | None] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    page_count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    # Random token in the QR code's verification URL; reveals nothing by itself.
    verification_code: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime]


class ReportReleaseHold(Base):
    """Something that keeps an order's report from being released to the patient.

    Other modules place and lift holds through ``reports.release`` (billing: "unpaid
    invoice") without reports knowing them; the report is still rendered and staff can read
    it, but ``report.released`` is published only once no hold is left.
    """

    __tablename__ = "report_release_holds"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(32), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    reason: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime]
