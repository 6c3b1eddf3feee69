"""Notification tables: consent per channel, lab policy, doctors' contacts, messages with
their status history, the raw webhook inbox and the shared rate-limit buckets."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.encrypted_type import EncryptedString
from nidaan.kit.model_base import Base, IdMixin, TenantMixin


class NotificationConsent(IdMixin, TenantMixin, Base):
    """A patient's opt-in (or opt-out) for one channel: WhatsApp's policy and DPDP s.6 both
    need it recorded, with when, how and under which notice."""

    __tablename__ = "notification_consents"
    __table_args__ = (UniqueConstraint("organisation_id", "patient_id", "channel"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    opted_in: Mapped[bool] = mapped_column(Boolean)
    # desk, patient_link, whatsapp_reply, sms_reply, import
    source: Mapped[str] = mapped_column(String(32))
    notice_version: Mapped[str | None] = mapped_column(String(32))
    # The language the notice was shown in (DPDP s.5: the patient's language).
    notice_language: Mapped[str | None] = mapped_column(String(8))
    opted_in_at: Mapped[datetime | None]
    opted_out_at: Mapped[datetime | None]
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class NotificationPolicy(IdMixin, TenantMixin, Base):
    """Who a lab notifies of what, and the order of channels to fall back through."""

    __tablename__ = "notification_policies"
    __table_args__ = (UniqueConstraint("organisation_id"),)

    report_to_patient: Mapped[bool] = mapped_column(Boolean, server_default=true())
    report_to_doctor: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    send_report_document: Mapped[bool] = mapped_column(Boolean, server_default=true())
    critical_to_patient: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    critical_to_doctor: Mapped[bool] = mapped_column(Boolean, server_default=true())
    payment_confirmation: Mapped[bool] = mapped_column(Boolean, server_default=true())
    appointment_reminder: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # First channel tried, then the fallbacks in order.
    channels: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("ARRAY['whatsapp','sms','email']")
    )
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DoctorContact(IdMixin, TenantMixin, Base):
    """A referring doctor's contact, matched by the name on orders, with the channels the
    doctor agreed to be messaged on."""

    __tablename__ = "notification_doctor_contacts"
    __table_args__ = (UniqueConstraint("organisation_id", "name_normalized"),)

    name: Mapped[str] = mapped_column(String(200))
    name_normalized: Mapped[str] = mapped_column(String(200))
    mobile: Mapped[str | None] = mapped_column(
        "mobile_encrypted", EncryptedString("notification_doctor_contacts.mobile")
    )
    email: Mapped[str | None] = mapped_column(String(254))
    preferred_language: Mapped[str] = mapped_column(String(8), server_default="en")
    channels: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Notification(IdMixin, TenantMixin, Base):
    """One message on one channel to one person; ``dedupe_key`` makes it happen once."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("organisation_id", "dedupe_key"),
        Index("ix_notifications_recipient_recent", "channel", "to_index", "claimed_at"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
    )

    dedupe_key: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(16))
    recipient_type: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patients.id"), index=True)
    doctor_contact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("notification_doctor_contacts.id")
    )
    to_address: Mapped[str | None] = mapped_column(
        "to_address_encrypted", EncryptedString("notifications.to_address")
    )
    # Blind index of the address: per-recipient pacing and opt-out replies find it.
    to_index: Mapped[str | None] = mapped_column(String(64))
    # The template parameters (names, tests, values: personal data), encrypted JSON.
    parameters: Mapped[str] = mapped_column(
        "parameters_encrypted", EncryptedString("notifications.parameters")
    )
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    file_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("files.id"))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    provider_message_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_title: Mapped[str | None] = mapped_column(String(300))
    fallback_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("notifications.id"))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]


class NotificationEvent(IdMixin, TenantMixin, Base):
    """One step in a notification's history; a provider status is recorded once."""

    __tablename__ = "notification_events"
    __table_args__ = (
        Index(
            "uq_notification_events_provider_status",
            "notification_id",
            "status",
            unique=True,
            postgresql_where=text("source = 'provider'"),
        ),
    )

    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # system | provider
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_title: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[str | None] = mapped_column(String(300))


class WebhookDelivery(IdMixin, Base):
    """A provider webhook exactly as received (verified first), processed afterwards; an
    unparseable one keeps its error. Identical redeliveries are stored once."""

    __tablename__ = "notification_webhook_inbox"
    __table_args__ = (UniqueConstraint("provider", "body_sha256"),)

    provider: Mapped[str] = mapped_column(String(16))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(500))


class RateBucket(Base):
    """A token bucket shared by every worker process (one per channel sender)."""

    __tablename__ = "notification_rate_buckets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[datetime]
