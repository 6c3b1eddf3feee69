"""Request and response schemas of the DPDP API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from nidaan.compliance.enums import DataClass, Purpose, RequestKind, RequestStatus
from nidaan.kit.schemas import InputSchema, Schema
from nidaan.kit.text import MultilineText


class ConsentChange(InputSchema):
    granted: bool = Field(description="true gives consent for the purpose, false withdraws it")
    notice_language: str | None = Field(
        None, max_length=8, description="Language the notice was shown in (default: the patient's)"
    )


class PurposeConsentOut(Schema):
    purpose: Purpose
    title: str = Field(description="The notice's title for the purpose, in its language")
    description: str
    granted: bool = Field(description="Whether the purpose may be pursued now")
    recorded: bool = Field(description="False when the patient was never asked")
    source: str | None
    notice_version: str | None
    notice_language: str | None
    granted_at: datetime | None
    withdrawn_at: datetime | None


class ConsentsOut(Schema):
    """The patient's consent per purpose after a change (an action's answer, not a list)."""

    consents: list[PurposeConsentOut]


class NoticeOut(Schema):
    version: str
    language: str = Field(description="Language shown (English when not translated)")
    purposes: list[PurposeConsentOut]
    rights: str
    grievance_response_days: int
    contact: str = Field(description="The lab's contact for privacy questions")


class RequestCreate(InputSchema):
    kind: RequestKind
    description: MultilineText | None = Field(None, max_length=4000)
    changes: dict[str, Any] | None = Field(
        None,
        description="For a correction: the patient fields to change, as in PATCH /patients/{id}",
    )

    @model_validator(mode="after")
    def _correction_has_changes(self) -> RequestCreate:
        if self.kind == RequestKind.CORRECTION and not self.changes:
            raise ValueError("a correction names the fields to change in 'changes'")
        return self


class RequestClose(InputSchema):
    status: RequestStatus = Field(description="completed or refused")
    resolution: MultilineText = Field(min_length=1, max_length=4000)

    @model_validator(mode="after")
    def _final(self) -> RequestClose:
        if self.status not in (RequestStatus.COMPLETED, RequestStatus.REFUSED):
            raise ValueError("a request is closed as completed or refused")
        return self


class RequestOut(Schema):
    id: uuid.UUID
    patient_id: uuid.UUID
    kind: RequestKind
    status: RequestStatus
    source: str
    description: str | None
    changes: dict[str, Any] | None
    received_at: datetime
    due_at: datetime = Field(description="Answer by (90 days, DPDP Rules r.14(3))")
    overdue: bool
    escalated_at: datetime | None
    closed_at: datetime | None
    resolution: str | None
    outcome: dict[str, Any] | None


class NomineeIn(InputSchema):
    full_name: str = Field(min_length=1, max_length=200)
    relationship: str = Field(min_length=1, max_length=64, examples=["daughter"])
    mobile: str | None = Field(None, max_length=20)
    email: str | None = Field(None, max_length=254)


class NomineeOut(Schema):
    full_name: str
    relationship: str
    mobile_masked: str | None
    email: str | None
    recorded_at: datetime


class LegalHoldIn(InputSchema):
    reason: str = Field(min_length=3, max_length=500)


class LegalHoldOut(Schema):
    id: uuid.UUID
    patient_id: uuid.UUID
    reason: str
    placed_at: datetime
    released_at: datetime | None


class RetentionRuleOut(Schema):
    record_class: str
    description: str
    years: int
    basis: str
    action: str
    erasable_on_request: bool


class RetentionClassReport(Schema):
    record_class: str
    action: str
    cutoff: datetime
    past_period: int = Field(description="Rows older than the retention period")
    held: int = Field(description="Of those, rows kept for a legal hold")
    purged: int = Field(description="Rows deleted (0 in a dry run)")


class RetentionRun(Schema):
    dry_run: bool
    at: datetime
    classes: list[RetentionClassReport]


class BreachCreate(InputSchema):
    title: str = Field(min_length=3, max_length=200)
    description: MultilineText = Field(min_length=1, max_length=8000)
    data_classes: list[DataClass] = Field(min_length=1)
    occurred_from: datetime
    occurred_to: datetime
    aware_at: datetime = Field(description="When the lab became aware (starts the clocks)")

    @model_validator(mode="after")
    def _window(self) -> BreachCreate:
        if self.occurred_to < self.occurred_from:
            raise ValueError("occurred_to is before occurred_from")
        for value in (self.occurred_from, self.occurred_to, self.aware_at):
            if value.tzinfo is None:
                raise ValueError("times carry their zone (e.g. 2026-12-07T10:00:00+05:30)")
        return self


class BreachUpdate(InputSchema):
    mitigation: MultilineText | None = Field(None, max_length=8000)
    board_intimated_at: datetime | None = None
    board_report_at: datetime | None = None
    cert_in_reported_at: datetime | None = None
    principals_notified_at: datetime | None = None
    closed: bool | None = None


class BreachOut(Schema):
    id: uuid.UUID
    title: str
    description: str
    data_classes: list[str]
    occurred_from: datetime
    occurred_to: datetime
    aware_at: datetime
    status: str
    mitigation: str | None
    board_report_due: datetime = Field(description="aware_at + 72 hours (DPDP Rules r.7(2))")
    cert_in_due: datetime = Field(description="aware_at + 6 hours (CERT-In Directions 2022)")
    board_intimated_at: datetime | None
    board_report_at: datetime | None
    cert_in_reported_at: datetime | None
    principals_notified_at: datetime | None
    overdue: list[str] = Field(description="Duties past their deadline and not yet done")


class AffectedPatient(Schema):
    patient_id: uuid.UUID
    mrn: str
    full_name: str
    data_classes: list[str]


class AffectedOut(Schema):
    breach_id: uuid.UUID
    scope: str
    count: int
    patients: list[AffectedPatient]


class AccessLogOut(Schema):
    at: datetime
    actor_kind: str
    actor_label: str
    entity_type: str
    entity_id: str
    action: str


class HeldCategory(Schema):
    data_class: str
    what: str
    count: int
    purposes: list[str]
    retained_under: str = Field(description="The retention rule that applies")


class SharedWith(Schema):
    recipient: str
    why: str
    count: int


class AccessSummary(Schema):
    """s.11: what we hold about the patient, why, and with whom it was shared."""

    patient_id: uuid.UUID
    generated_at: datetime
    held: list[HeldCategory]
    consents: list[PurposeConsentOut]
    shared_with: list[SharedWith]
    nominee: NomineeOut | None
    legal_hold: bool
    open_requests: int
    reads_last_year: int = Field(description="Times staff opened the record or a report")


class PrivacyLinkOut(Schema):
    url: str
    token: str = Field(description="Shown once; only its hash is kept")
    expires_at: datetime


class PrivacyPageOut(Schema):
    patient_name: str
    notice: NoticeOut
    requests: list[RequestOut]


class PatientRequestCreate(InputSchema):
    kind: RequestKind
    description: MultilineText | None = Field(None, max_length=4000)
