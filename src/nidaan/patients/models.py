"""Patient tables. Mobile and ABHA identifiers are encrypted with a blind index for search."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Integer, Numeric, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from nidaan.kit.encrypted_type import EncryptedString
from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin


class Patient(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("organisation_id", "mrn"),)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, object]:  # noqa: N805
        # eager_defaults: an INSERT or UPDATE returns what the database set (updated_at)
        # instead of expiring it for another SELECT.
        return {"version_id_col": cls.__table__.c.version, "eager_defaults": True}  # type: ignore[attr-defined]

    mrn: Mapped[str] = mapped_column(String(32))
    full_name: Mapped[str] = mapped_column(String(200))
    # Lower-case, single-spaced name for search and duplicate detection.
    name_normalized: Mapped[str] = mapped_column(String(200), index=True)
    sex: Mapped[str] = mapped_column(String(16))
    date_of_birth: Mapped[date | None]
    # True when the date of birth was derived from a stated age ("about 45 years").
    dob_estimated: Mapped[bool] = mapped_column(Boolean, server_default=false())
    mobile: Mapped[str | None] = mapped_column(
        "mobile_encrypted", EncryptedString("patients.mobile")
    )
    mobile_index: Mapped[str | None] = mapped_column(String(64), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(String(500))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(64))
    pincode: Mapped[str | None] = mapped_column(String(6))
    preferred_language: Mapped[str] = mapped_column(String(8), server_default="en")
    abha_number: Mapped[str | None] = mapped_column(
        "abha_number_encrypted", EncryptedString("patients.abha_number")
    )
    abha_number_index: Mapped[str | None] = mapped_column(String(64), index=True)
    abha_address: Mapped[str | None] = mapped_column(String(120))
    referring_doctor: Mapped[str | None] = mapped_column(String(200))
    pregnant: Mapped[bool | None] = mapped_column(Boolean)
    weight_kg: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    # Set when this record was merged into another; both histories stay.
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patients.id"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    registered_at_branch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("branches.id"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class PatientDuplicateFlag(IdMixin, TenantMixin, Base):
    """A likely duplicate seen at registration, for a person to merge or dismiss."""

    __tablename__ = "patient_duplicate_flags"
    __table_args__ = (UniqueConstraint("patient_id", "candidate_id"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    candidate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    score: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
