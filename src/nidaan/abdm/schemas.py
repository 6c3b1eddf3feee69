"""Request and response shapes of the ABDM API (/api/v1/abdm).

Aadhaar numbers are accepted only by the enrolment start (``aadhaar_number``) and are never
returned: responses carry ``aadhaar_masked`` (last four digits).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from nidaan.kit.schemas import InputSchema, Schema
from nidaan.patients.schemas import PatientBrief


class FacilityCreate(InputSchema):
    hip_id: str = Field(
        min_length=3,
        max_length=50,
        pattern=r"^[A-Za-z0-9_-]+$",
        examples=["IN2710000001"],
        description="The facility's HFR id: its HIP id at ABDM",
    )
    name: str = Field(min_length=1, max_length=200, examples=["Demo Diagnostics, Pune"])
    branch_id: uuid.UUID | None = None
    counter_code: str = Field(
        "REG-1", min_length=1, max_length=50, description="Scan-and-share counter (QR context)"
    )


class FacilityOut(Schema):
    id: uuid.UUID
    hip_id: str
    name: str
    branch_id: uuid.UUID | None
    counter_code: str
    is_active: bool
    created_at: datetime


class BridgeOut(Schema):
    bridge_url: str = Field(description="Where ABDM will send callbacks (our public base URL)")
    hip_ids: list[str]


class EnrolmentStart(InputSchema):
    """Start creating an ABHA: the patient's Aadhaar number, with their consent."""

    patient_id: uuid.UUID
    aadhaar_number: str = Field(
        min_length=12, max_length=14, description="12 digits; sent to ABDM encrypted, never stored"
    )
    consent: Literal[True] = Field(
        description="The patient agreed to ABDM's ABHA enrolment consent (version 1.4)"
    )


class AadhaarOtp(InputSchema):
    otp: str = Field(min_length=4, max_length=8, examples=["123456"])
    mobile: str = Field(
        description="The mobile to link to the ABHA (verified by OTP if it is "
        "not the Aadhaar-linked one)",
        examples=["98765 43210"],
    )


class OtpIn(InputSchema):
    otp: str = Field(min_length=4, max_length=8, examples=["123456"])


class AddressChoice(InputSchema):
    abha_address: str = Field(min_length=4, max_length=60, examples=["asha.verma"])


class AbhaLinkStart(InputSchema):
    """Verify an ABHA the patient already has, by OTP, and put it on their record."""

    patient_id: uuid.UUID
    abha_number: str | None = Field(None, examples=["91-1111-2222-3333"])
    abha_address: str | None = Field(None, examples=["sunita.sharma@sbx"])
    otp_via: Literal["mobile", "aadhaar"] = Field(
        "mobile", description="Where ABDM sends the OTP (ABHA number only; addresses use mobile)"
    )


class EnrolmentOut(Schema):
    id: uuid.UUID
    patient_id: uuid.UUID
    kind: str
    status: str = Field(description="otp_sent, mobile_otp_sent, address_pending or completed")
    aadhaar_masked: str | None = Field(examples=["XXXX-XXXX-2346"])
    abha_number_masked: str | None
    abha_address: str | None
    address_suggestions: list[str]
    profile: dict[str, Any] = Field(description="Name, gender and year of birth ABDM holds")
    created_at: datetime
    completed_at: datetime | None


class RequestOut(Schema):
    id: uuid.UUID
    request_id: uuid.UUID
    kind: str
    status: str = Field(description="pending, sent, answered, failed or timed_out")
    hip_id: str
    patient_id: uuid.UUID | None
    subject: dict[str, Any]
    response: dict[str, Any] | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    answered_at: datetime | None
    deadline_at: datetime


class CareContextOut(Schema):
    id: uuid.UUID
    patient_id: uuid.UUID
    order_id: uuid.UUID
    report_id: uuid.UUID | None
    reference: str
    display: str
    hi_type: str
    hip_id: str
    abha_address: str | None
    status: str
    linked_via: str | None
    linked_at: datetime | None
    error: str | None
    record_date: datetime


class ConsentOut(Schema):
    id: uuid.UUID
    consent_id: str
    hip_id: str
    status: str
    patient_abha_address: str | None
    purpose_code: str | None
    purpose_text: str | None
    hi_types: list[str]
    care_contexts: list[dict[str, Any]]
    access_mode: str | None
    date_from: datetime | None
    date_to: datetime | None
    data_erase_at: datetime | None
    frequency_unit: str | None
    frequency_value: int | None
    frequency_repeats: int | None
    granted_at: datetime | None
    revoked_at: datetime | None
    expired_at: datetime | None
    updated_at: datetime


class TransferOut(Schema):
    id: uuid.UUID
    transaction_id: str
    consent_id: str
    hip_id: str
    status: str
    date_from: datetime | None
    date_to: datetime | None
    entries: list[dict[str, Any]]
    refusal: str | None
    attempts: int
    last_error: str | None
    pushed_at: datetime | None
    notified_at: datetime | None
    created_at: datetime


class MessageOut(Schema):
    id: uuid.UUID
    direction: str
    method: str
    path: str
    request_id: str | None
    hip_id: str | None
    http_status: int | None
    status: str
    error: str | None
    body: str = Field(description="As sent or received; Aadhaar, OTPs and tokens redacted")
    response: str | None
    duration_ms: int | None
    created_at: datetime


class ShareCandidateOut(Schema):
    score: int
    reasons: list[str]
    patient: PatientBrief


class ShareTokenOut(Schema):
    id: uuid.UUID
    token_number: int
    share_date: date
    counter_code: str
    status: str
    name: str
    gender: str | None
    year_of_birth: int | None
    abha_number_masked: str | None
    abha_address: str | None
    mobile_masked: str | None
    received_at: datetime
    expires_at: datetime
    patient_id: uuid.UUID | None
    candidates: list[ShareCandidateOut]


class ShareRegister(InputSchema):
    registered_at_branch_id: uuid.UUID | None = None


class ShareMatch(InputSchema):
    patient_id: uuid.UUID


class ShareRegisterOut(Schema):
    token: ShareTokenOut
    patient_id: uuid.UUID
    possible_duplicates: list[uuid.UUID] = Field(
        description="Existing records flagged as likely the same person (see patients/duplicates)"
    )


class Accepted(Schema):
    status: str = Field(examples=["queued"])
