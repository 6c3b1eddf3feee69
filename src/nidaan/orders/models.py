from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin


class Order(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("organisation_id", "order_number"),)

    order_number: Mapped[str] = mapped_column(String(40))
    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    referring_doctor: Mapped[str | None] = mapped_column(String(200))
    clinical_notes: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    completed_at: Mapped[datetime | None]


class OrderTest(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """One test of an order; panels are expanded, remembering which panel asked for it."""

    __tablename__ = "order_tests"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"))
    panel_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("catalog_panels.id"))
    sample_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("samples.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(300))
