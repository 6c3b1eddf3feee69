"""Request and response shapes of the results API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, Field, PlainSerializer

from nidaan.kit.schemas import InputSchema, Schema
from nidaan.kit.text import MultilineText
from nidaan.results.enums import CriticalAlertStatus, Flag, ResultSource, ResultStatus


def _plain(value: Decimal) -> str:
    """Render like "99" or "13.3": no exponent, no padding from the column's scale."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


#: A number rendered the same whether it was just computed or read back from the database.
Number = Annotated[Decimal, PlainSerializer(_plain, return_type=str, when_used="json")]


class ResultEnter(InputSchema):
    id: uuid.UUID | None = Field(
        None, description="Client-generated UUIDv7 (offline entry); a replay returns the row"
    )
    order_test_id: uuid.UUID
    value: str = Field(
        min_length=1,
        max_length=200,
        description="As typed: '5.6', '5,6', '<0.01', or a choice's code or text",
        examples=["5.6"],
    )
    unit: str | None = Field(
        None, max_length=32, description="Unit of the value; converted to the test's unit"
    )
    comment: MultilineText | None = Field(None, max_length=2000)


class ResultCorrect(InputSchema):
    value: str = Field(min_length=1, max_length=200)
    unit: str | None = Field(None, max_length=32)
    reason: MultilineText = Field(
        min_length=1, max_length=500, description="Printed on the amended report"
    )
    comment: MultilineText | None = Field(
        None, max_length=2000, description="Default: the old comment"
    )


class HoldRelease(InputSchema):
    note: MultilineText = Field(
        min_length=1, max_length=500, description="Why the result may go ahead"
    )


class CriticalAcknowledge(InputSchema):
    notified_person: str = Field(
        min_length=1, max_length=200, description="Who was told (name and role)"
    )
    notified_at: AwareDatetime = Field(description="When they were told")
    read_back: bool = Field(description="Did they read the value back?")
    notes: MultilineText | None = Field(
        None, max_length=1000, description="Difficulties, escalation"
    )


class VerificationOut(Schema):
    user_id: uuid.UUID
    level: int
    verified_at: datetime


class ResultOut(Schema):
    id: uuid.UUID
    organisation_id: uuid.UUID
    order_id: uuid.UUID
    order_test_id: uuid.UUID
    sample_id: uuid.UUID | None
    test_id: uuid.UUID
    test_code: str = Field(description="Catalogue code of the test", examples=["K"])
    test_name: str = Field(description="Catalogue name of the test", examples=["Potassium"])
    patient_id: uuid.UUID
    result_version: int
    is_current: bool
    supersedes_id: uuid.UUID | None
    correction_reason: str | None
    status: ResultStatus
    source: ResultSource
    entered_value: str
    entered_unit: str | None
    value_numeric: Number | None = Field(description="In the test's unit, rounded as reported")
    value_text: str | None = Field(description="The value as reported ('5.6', '<0.01', 'Positive')")
    value_code: str | None
    unit: str | None
    flag: Flag | None
    reference_low: Number | None
    reference_high: Number | None
    reference_text: str | None
    delta_failed: bool
    delta_previous_value: Number | None
    delta_previous_at: datetime | None
    hold_reason: str | None
    instrument_flags: str | None
    comment: str | None
    entered_at: datetime
    entered_by_id: uuid.UUID | None
    verified_at: datetime | None
    verified_by_id: uuid.UUID | None
    instrument_id: uuid.UUID | None = Field(
        description="The analyzer that measured it (empty for values entered by hand)"
    )
    autoverified: bool = Field(
        description="Verified by the system under the test's autoverification rules"
    )
    review_reason: str | None = Field(
        description="Why it waits for a person, e.g. the autoverification rule that stopped it",
        examples=["Rule 3 (delta): changed 45% since 2025-01-02 (limit 30%)"],
    )
    verifications: list[VerificationOut] = Field(default_factory=list)


class CriticalAlertOut(Schema):
    id: uuid.UUID
    result_id: uuid.UUID
    order_id: uuid.UUID
    patient_id: uuid.UUID
    test_id: uuid.UUID
    value: str
    flag: Flag
    status: CriticalAlertStatus
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by_id: uuid.UUID | None
    notified_person: str | None
    notified_at: datetime | None
    read_back: bool | None
    notes: str | None


class PendingEntryOut(Schema):
    order_test_id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    priority: str
    sample_id: uuid.UUID
    accession: str
    sample_status: str
    received_at: datetime | None
    test_id: uuid.UUID
    test_code: str
    test_name: str
    department: str
    patient_id: uuid.UUID
    patient_name: str
    patient_sex: str = Field(description="Ranges depend on it")
    patient_date_of_birth: date | None


class PendingVerificationOut(Schema):
    result_id: uuid.UUID
    order_test_id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    priority: str
    test_code: str
    test_name: str
    department: str
    status: ResultStatus
    value_text: str | None
    unit: str | None
    flag: Flag | None
    hold_reason: str | None
    review_reason: str | None = Field(
        description="Why it waits for a person (the autoverification rule that stopped it)"
    )
    blocked_reason: str | None = Field(
        description="Why it cannot be verified now (a quality-control rejection of its "
        "instrument and test); verifying it answers 409"
    )
    result_version: int
    entered_at: datetime
    entered_by_id: uuid.UUID | None
    verifications_done: int
    verifications_required: int


class TatBreachOut(Schema):
    order_test_id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    priority: str
    accession: str
    test_code: str
    test_name: str
    department: str
    status: str
    received_at: datetime
    due_at: datetime
    minutes_overdue: int
