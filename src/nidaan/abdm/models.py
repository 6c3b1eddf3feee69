"""ABDM tables: the lab's HIP registrations, every exchange with the gateway (raw), pending
asynchronous requests, care contexts, consent artefacts, data transfers, ABHA enrolments and
the scan-and-share token queue.

No Aadhaar number is stored anywhere: enrolments keep its last four digits only.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.encrypted_type import EncryptedString
from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin


class AbdmFacility(IdMixin, TenantMixin, TimestampMixin, Base):
    """A facility of the lab registered with ABDM as a HIP (its HFR id is the HIP id)."""

    __tablename__ = "abdm_facilities"

    hip_id: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    branch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("branches.id"))
    # Scan and share: the counter code printed in the branch's QR ("context").
    counter_code: Mapped[str] = mapped_column(String(50), server_default="REG-1")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())


class AbdmMessage(IdMixin, Base):
    """One exchange with ABDM, as it went over the wire (sensitive fields redacted).

    Inbound callbacks are stored before they are acknowledged; a repeat of a request id is
    stored as a duplicate and not processed again (a rejected copy, e.g. with a forged token,
    does not count). ``organisation_id`` is empty for a
    callback naming a HIP we do not know (kept with its error, never dropped).
    """

    __tablename__ = "abdm_messages"
    __table_args__ = (
        Index(
            "uq_abdm_messages_inbound_request",
            "request_id",
            "path",
            unique=True,
            postgresql_where=text("direction = 'in' AND status NOT IN ('duplicate', 'rejected')"),
        ),
        Index("ix_abdm_messages_org_created", "organisation_id", "created_at"),
    )

    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    direction: Mapped[str] = mapped_column(String(8))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(100))
    hip_id: Mapped[str | None] = mapped_column(String(50))
    http_status: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None]


class AbdmRequest(IdMixin, TenantMixin, Base):
    """An outbound call answered later by a callback (202 first): tracked until answered."""

    __tablename__ = "abdm_requests"
    __table_args__ = (Index("ix_abdm_requests_org_status", "organisation_id", "status"),)

    request_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    hip_id: Mapped[str] = mapped_column(String(50))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patients.id"))
    # What the answer applies to, e.g. {"care_context_ids": [...], "abha_address": "..."}.
    subject: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime]


class AbdmLinkToken(IdMixin, TenantMixin, Base):
    """The gateway's link token for one ABHA address at one HIP (reused until it expires)."""

    __tablename__ = "abdm_link_tokens"
    __table_args__ = (UniqueConstraint("hip_id", "abha_address"),)

    hip_id: Mapped[str] = mapped_column(String(50))
    abha_address: Mapped[str] = mapped_column(String(120))
    token: Mapped[str] = mapped_column("token_encrypted", EncryptedString("abdm_link_tokens.token"))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AbdmCareContext(IdMixin, TenantMixin, TimestampMixin, Base):
    """One order (its report) offered to ABDM as a care context of a patient."""

    __tablename__ = "abdm_care_contexts"
    __table_args__ = (
        UniqueConstraint("organisation_id", "order_id"),
        UniqueConstraint("organisation_id", "reference"),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"))
    report_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("reports.id"))
    reference: Mapped[str] = mapped_column(String(64))
    display: Mapped[str] = mapped_column(String(200))
    hi_type: Mapped[str] = mapped_column(String(40), server_default="DiagnosticReport")
    hip_id: Mapped[str] = mapped_column(String(50))
    abha_address: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16))
    linked_via: Mapped[str | None] = mapped_column(String(16))
    linked_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # When the report was issued (the consent and request date ranges filter on it).
    record_date: Mapped[datetime]


class AbdmLinkSession(IdMixin, TenantMixin, Base):
    """A user-initiated link (discover -> init -> confirm): the OTP we sent, hashed."""

    __tablename__ = "abdm_link_sessions"

    transaction_id: Mapped[str] = mapped_column(String(100), index=True)
    link_reference: Mapped[str] = mapped_column(String(64), unique=True)
    hip_id: Mapped[str] = mapped_column(String(50))
    abha_address: Mapped[str] = mapped_column(String(120))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    care_context_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid))
    otp_hash: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AbdmConsent(IdMixin, TenantMixin, TimestampMixin, Base):
    """A consent artefact the consent manager sent us, with its current status."""

    __tablename__ = "abdm_consents"
    __table_args__ = (UniqueConstraint("organisation_id", "consent_id"),)

    consent_id: Mapped[str] = mapped_column(String(100))
    hip_id: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(16))
    patient_abha_address: Mapped[str | None] = mapped_column(String(120))
    purpose_code: Mapped[str | None] = mapped_column(String(16))
    purpose_text: Mapped[str | None] = mapped_column(String(200))
    hi_types: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # [{"patientReference": ..., "careContextReference": ...}]
    care_contexts: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    access_mode: Mapped[str | None] = mapped_column(String(16))
    date_from: Mapped[datetime | None]
    date_to: Mapped[datetime | None]
    data_erase_at: Mapped[datetime | None]
    frequency_unit: Mapped[str | None] = mapped_column(String(8))
    frequency_value: Mapped[int | None] = mapped_column(Integer)
    frequency_repeats: Mapped[int | None] = mapped_column(Integer)
    consent_manager_id: Mapped[str | None] = mapped_column(String(50))
    signature: Mapped[str | None] = mapped_column(Text)
    artefact: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    granted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]


class AbdmTransfer(IdMixin, TenantMixin, TimestampMixin, Base):
    """A health-information request: checked against its consent, pushed, notified."""

    __tablename__ = "abdm_transfers"

    transaction_id: Mapped[str] = mapped_column(String(100), unique=True)
    consent_id: Mapped[str] = mapped_column(String(100), index=True)
    hip_id: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(16))
    date_from: Mapped[datetime | None]
    date_to: Mapped[datetime | None]
    data_push_url: Mapped[str] = mapped_column(String(500))
    # The requester's Fidelius public key, nonce and key expiry (public values).
    key_material: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Per care context: {"careContextReference", "hiStatus", "description"}.
    entries: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    refusal: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    pushed_at: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]


class AbdmEnrolment(IdMixin, TenantMixin, TimestampMixin, Base):
    """An ABHA creation (Aadhaar OTP) or verification of an existing ABHA for a patient."""

    __tablename__ = "abdm_enrolments"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(20))
    transaction_id: Mapped[str | None] = mapped_column(String(100))
    # Only ever the last four digits (what the desk may show).
    aadhaar_last4: Mapped[str | None] = mapped_column(String(4))
    mobile: Mapped[str | None] = mapped_column(
        "mobile_encrypted", EncryptedString("abdm_enrolments.mobile")
    )
    abha_number: Mapped[str | None] = mapped_column(
        "abha_number_encrypted", EncryptedString("abdm_enrolments.abha_number")
    )
    abha_address: Mapped[str | None] = mapped_column(String(120))
    # What ABDM returned about the person (name, gender, year of birth) for the desk to check.
    profile: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    address_suggestions: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    completed_at: Mapped[datetime | None]


class AbdmShareToken(IdMixin, TenantMixin, Base):
    """Scan and share: a profile a patient shared at the desk, waiting to be registered."""

    __tablename__ = "abdm_share_tokens"
    __table_args__ = (
        UniqueConstraint("facility_id", "share_date", "token_number"),
        UniqueConstraint("request_id"),
    )

    facility_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("abdm_facilities.id"))
    counter_code: Mapped[str] = mapped_column(String(50))
    share_date: Mapped[date] = mapped_column(Date)
    token_number: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    gender: Mapped[str | None] = mapped_column(String(1))
    year_of_birth: Mapped[int | None] = mapped_column(Integer)
    month_of_birth: Mapped[int | None] = mapped_column(Integer)
    day_of_birth: Mapped[int | None] = mapped_column(Integer)
    abha_number: Mapped[str | None] = mapped_column(
        "abha_number_encrypted", EncryptedString("abdm_share_tokens.abha_number")
    )
    abha_number_index: Mapped[str | None] = mapped_column(String(64))
    abha_address: Mapped[str | None] = mapped_column(String(120))
    mobile: Mapped[str | None] = mapped_column(
        "mobile_encrypted", EncryptedString("abdm_share_tokens.mobile")
    )
    address: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patients.id"))
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
