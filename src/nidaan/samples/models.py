from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin


class Sample(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("organisation_id", "accession"),
        Index(
            "uq_samples_organisation_label_alias",
            "organisation_id",
            "label_alias",
            unique=True,
            postgresql_where=text("label_alias IS NOT NULL"),
        ),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"))
    accession: Mapped[str] = mapped_column(String(40))
    specimen_type: Mapped[str] = mapped_column(String(64))
    container: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    collected_at: Mapped[datetime | None]
    collected_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    collected_at_branch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("branches.id"))
    manifest_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("manifests.id"))
    received_at: Mapped[datetime | None]
    received_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    # The lab that received (and tests) it, and what it looked like on arrival.
    received_at_branch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("branches.id"))
    receipt_condition: Mapped[list[str] | None] = mapped_column(ARRAY(String(32)))
    receipt_remarks: Mapped[str | None] = mapped_column(String(500))
    completed_at: Mapped[datetime | None]
    rejected_at: Mapped[datetime | None]
    rejected_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    rejection_reason: Mapped[str | None] = mapped_column(String(32))
    rejection_note: Mapped[str | None] = mapped_column(String(500))
    # A rejected sample points at the new sample ordered to replace it.
    recollection_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("samples.id"))
    # A pre-printed barcode label stuck on at the door (bound once in the organisation).
    label_alias: Mapped[str | None] = mapped_column(String(40))
    # The strictest catalogue stability window of the tests put in this tube (set when the
    # tube is made or a test joins it); None = only the container's default applies.
    test_stability_hours: Mapped[int | None] = mapped_column(Integer)


class Manifest(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """A batch of samples sent from a collection centre to the lab."""

    __tablename__ = "manifests"
    __table_args__ = (UniqueConstraint("organisation_id", "manifest_number"),)

    manifest_number: Mapped[str] = mapped_column(String(40))
    from_branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"))
    to_branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"))
    status: Mapped[str] = mapped_column(String(16))
    courier: Mapped[str | None] = mapped_column(String(200))
    dispatched_at: Mapped[datetime | None]
    dispatched_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    received_at: Mapped[datetime | None]
