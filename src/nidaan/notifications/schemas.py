"""Request and response shapes of the notifications API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from nidaan.kit.schemas import InputSchema, Schema
from nidaan.notifications.enums import Channel


class NotificationEventOut(Schema):
    status: str = Field(examples=["delivered"])
    source: str = Field(description="system (Nidaan) or provider (webhook / API answer)")
    occurred_at: datetime
    error_code: str | None = Field(examples=["131047"])
    error_title: str | None
    detail: str | None


class NotificationOut(Schema):
    id: uuid.UUID
    template: str = Field(examples=["test_result_ready"])
    kind: str = Field(description="template, or document (the report PDF on WhatsApp)")
    language: str = Field(examples=["hi"])
    channel: str = Field(examples=["whatsapp"])
    recipient_type: str = Field(examples=["patient", "doctor"])
    to: str | None = Field(description="The address, masked", examples=["+91••••••3210"])
    patient_id: uuid.UUID | None
    subject_type: str | None = Field(examples=["report", "critical_alert", "payment"])
    subject_id: uuid.UUID | None
    status: str = Field(examples=["delivered"])
    attempts: int
    provider_message_id: str | None = Field(description="WhatsApp wamid, SMS id, Message-ID")
    error_code: str | None
    error_title: str | None
    fallback_of_id: uuid.UUID | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    history: list[NotificationEventOut]


class ConsentIn(InputSchema):
    opted_in: bool
    source: str = Field("desk", max_length=32, examples=["desk", "patient_link"])
    notice_version: str | None = Field(None, max_length=32, examples=["2026-11"])


class ConsentOut(Schema):
    channel: Channel
    opted_in: bool
    source: str
    notice_version: str | None
    opted_in_at: datetime | None
    opted_out_at: datetime | None
    updated_at: datetime


class PolicyOut(Schema):
    report_to_patient: bool
    report_to_doctor: bool
    send_report_document: bool = Field(description="Also send the PDF as a WhatsApp document")
    critical_to_patient: bool
    critical_to_doctor: bool
    payment_confirmation: bool
    appointment_reminder: bool
    channels: list[Channel] = Field(description="Preferred channel first, then fallbacks")


class PolicyUpdate(InputSchema):
    report_to_patient: bool | None = None
    report_to_doctor: bool | None = None
    send_report_document: bool | None = None
    critical_to_patient: bool | None = None
    critical_to_doctor: bool | None = None
    payment_confirmation: bool | None = None
    appointment_reminder: bool | None = None
    channels: list[str] | None = None


class DoctorIn(InputSchema):
    name: str = Field(min_length=1, max_length=200, examples=["Dr. Anil Kulkarni"])
    mobile: str | None = Field(None, max_length=20)
    email: str | None = Field(None, max_length=254)
    channels: list[str] = Field(description="Channels the doctor agreed to be messaged on")
    preferred_language: str = "en"
    is_active: bool = True


class DoctorOut(Schema):
    id: uuid.UUID
    name: str
    mobile: str | None = Field(description="Masked")
    email: str | None
    channels: list[str]
    preferred_language: str
    is_active: bool


class ResendIn(InputSchema):
    channel: Channel = Field(description="Where to send the report's message again")
