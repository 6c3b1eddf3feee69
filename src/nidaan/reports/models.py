from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
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
