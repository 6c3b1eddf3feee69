"""DPDP tables: consent per purpose, rights requests, nominees, legal holds, breaches and
the patient's privacy links. Messaging consent lives in ``notification_consents``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.encrypted_type import EncryptedString
from nidaan.kit.model_base import Base, IdMixin, TenantMixin


class DpdpConsent(IdMixin, TenantMixin, Base):
    """The patient's current answer for one non-messaging purpose (care, ABDM sharing,
    research, marketing); every change is also an audit entry (the history)."""

    __tablename__ = "dpdp_consents"
    __table_args__ = (UniqueConstraint("organisation_id", "patient_id", "purpose"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(32))
    notice_version: Mapped[str] = mapped_column(String(32))
    notice_language: Mapped[str] = mapped_column(String(8))
    granted_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class RightsRequest(IdMixin, TenantMixin, Base):
    """A data principal's request or grievance with its 90-day clock."""

    __tablename__ = "dpdp_requests"
    __table_args__ = (
        Index(
            "ix_dpdp_requests_open",
            "organisation_id",
            "due_at",
            postgresql_where=text("status IN ('open', 'escalated')"),
        ),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    source: Mapped[str] = mapped_column(String(32))
    # What was asked: free text, and for corrections the fields to change.
    description: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    received_at: Mapped[datetime]
    due_at: Mapped[datetime]
    escalated_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    resolution: Mapped[str | None] = mapped_column(Text)
    # What was done: erased fields, retained classes with their basis, applied changes.
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class Nominee(IdMixin, TenantMixin, Base):
    """s.14: the person who may exercise the patient's rights on death or incapacity."""

    __tablename__ = "dpdp_nominees"
    __table_args__ = (UniqueConstraint("organisation_id", "patient_id"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    full_name: Mapped[str] = mapped_column(String(200))
    relationship: Mapped[str] = mapped_column(String(64))
    mobile: Mapped[str | None] = mapped_column(
        "mobile_encrypted", EncryptedString("dpdp_nominees.mobile")
    )
    email: Mapped[str | None] = mapped_column(String(254))
    recorded_at: Mapped[datetime]
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class LegalHold(IdMixin, TenantMixin, Base):
    """A patient's records kept beyond retention and erasure (litigation, an inquiry)."""

    __tablename__ = "dpdp_legal_holds"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    placed_at: Mapped[datetime]
    placed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    released_at: Mapped[datetime | None]
    released_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class Breach(IdMixin, TenantMixin, Base):
    """One personal-data breach and the intimations the law asks for."""

    __tablename__ = "dpdp_breaches"

    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    data_classes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    occurred_from: Mapped[datetime]
    occurred_to: Mapped[datetime]
    aware_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    mitigation: Mapped[str | None] = mapped_column(Text)
    board_intimated_at: Mapped[datetime | None]
    board_report_at: Mapped[datetime | None]
    cert_in_reported_at: Mapped[datetime | None]
    principals_notified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class PatientLink(IdMixin, TenantMixin, Base):
    """The patient's own privacy page: notice, consents, requests. Only a hash of the
    token is kept; the link works until it expires or a newer one replaces it."""

    __tablename__ = "dpdp_patient_links"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
