"""Request and response shapes of the QC API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, field_validator

from nidaan.kit.schemas import InputSchema, Schema
from nidaan.qc.domain import Rule, Severity
from nidaan.qc.enums import (
    CorrectiveActionKind,
    LotState,
    ResultOutcome,
    ResultSource,
    RunOutcome,
    TargetSource,
)

Name = Annotated[str, Field(min_length=1, max_length=200)]
Number = Annotated[Decimal, Field(max_digits=18, decimal_places=6)]


class MaterialCreate(InputSchema):
    name: Name = Field(description="Product name", examples=["Lyphochek Assayed Chemistry"])
    manufacturer: str | None = Field(None, max_length=200, examples=["Bio-Rad"])
    level: str = Field(min_length=1, max_length=32, description="Level", examples=["2"])


class MaterialOut(Schema):
    id: uuid.UUID
    name: str
    manufacturer: str | None
    level: str
    created_at: datetime


class LotCreate(InputSchema):
    material_id: uuid.UUID
    lot_number: str = Field(min_length=1, max_length=64, examples=["26440"])
    expires_on: date = Field(description="Expiry date printed on the vial")
    instrument_id: uuid.UUID = Field(description="The analyzer this lot is run on")
    test_id: uuid.UUID = Field(description="The analyte (catalogue test)")
    control_id: str = Field(
        min_length=1,
        max_length=64,
        description="The sample id the analyzer sends for this control (its QC barcode or "
        "position); analyzer QC results are matched to the lot by it",
        examples=["QC-CHEM-2"],
    )
    target_source: TargetSource = Field(
        description="manufacturer: mean and SD from the insert (the lot starts active); "
        "established: the lab's own mean and SD from the first establish_runs results"
    )
    mean: Number | None = Field(None, description="Target mean (manufacturer targets)")
    sd: Number | None = Field(None, gt=0, description="Target SD (manufacturer targets)")
    establish_runs: int = Field(
        20, ge=2, le=200, description="Results that establish the lab's own target"
    )


class LotOut(Schema):
    id: uuid.UUID
    material_id: uuid.UUID
    lot_number: str
    expires_on: date
    instrument_id: uuid.UUID
    test_id: uuid.UUID
    control_id: str
    target_source: TargetSource
    mean: Decimal | None
    sd: Decimal | None
    establish_runs: int
    state: LotState
    activated_at: datetime | None
    expired_at: datetime | None
    version: int


class RuleSettingsIn(InputSchema):
    rules: dict[Rule, Severity] = Field(
        default_factory=dict,
        description="Per rule: off, warning or reject; rules not named keep their default "
        "(1-2s warning, the others reject)",
        examples=[{"1-2s": "warning", "10x": "off"}],
    )
    require_rerun: bool = Field(
        False,
        description="After a rejection, hold the patient results it blocked for a re-run "
        "instead of letting them be verified once a run passes",
    )
    run_window_minutes: int = Field(
        60, ge=1, le=24 * 60, description="Controls this close together form one run"
    )


class RuleSettingsOut(Schema):
    test_id: uuid.UUID
    rules: dict[str, str]
    require_rerun: bool
    run_window_minutes: int


class QcResultCreate(InputSchema):
    lot_id: uuid.UUID
    value: Number = Field(description="The control's measured value, in the test's unit")
    measured_at: datetime | None = Field(
        None, description="When it was measured (default now); not in the future"
    )
    comment: str | None = Field(None, max_length=300)

    @field_validator("measured_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("measured_at needs a time zone")
        return value


class ViolationOut(Schema):
    id: uuid.UUID
    qc_result_id: uuid.UUID
    run_id: uuid.UUID
    lot_id: uuid.UUID
    instrument_id: uuid.UUID
    test_id: uuid.UUID
    rule: str = Field(examples=["2-2s"])
    severity: str = Field(examples=["reject"])
    scope: str = Field(description="point, within_run, across_runs or across_levels")
    detail: str
    z_values: list[float] = Field(description="z-scores of the pattern, oldest first")
    corrective_action_id: uuid.UUID | None
    created_at: datetime


class QcResultOut(Schema):
    id: uuid.UUID
    run_id: uuid.UUID
    lot_id: uuid.UUID
    instrument_id: uuid.UUID
    test_id: uuid.UUID
    value: Decimal
    unit: str | None
    z: Decimal | None = Field(description="(value - mean) / SD; empty while establishing")
    measured_at: datetime
    source: ResultSource
    message_id: uuid.UUID | None
    entered_by_id: uuid.UUID | None
    outcome: ResultOutcome
    run_outcome: RunOutcome
    violations: list[ViolationOut]


class UnmatchedOut(Schema):
    id: uuid.UUID
    instrument_id: uuid.UUID
    message_id: uuid.UUID | None
    control_id: str
    instrument_code: str
    test_id: uuid.UUID | None
    value: str
    unit: str | None
    measured_at: datetime | None
    reason: str
    created_at: datetime


class CorrectiveActionIn(InputSchema):
    action: CorrectiveActionKind
    note: str = Field(min_length=1, max_length=1000, examples=["Recalibrated GLU, new R1"])
    require_rerun: bool = Field(
        False, description="Hold the patient results the rejection blocked for a re-run"
    )


class CorrectiveActionOut(Schema):
    id: uuid.UUID
    instrument_id: uuid.UUID
    test_id: uuid.UUID
    action: CorrectiveActionKind
    note: str
    require_rerun: bool
    performed_by_id: uuid.UUID
    performed_at: datetime
    answered_violations: list[uuid.UUID]
    released: bool = Field(
        description="Whether the instrument and test are out of rejection now (a passing "
        "run after the rejection, every rejection answered)"
    )


class LookBackResult(Schema):
    result_id: uuid.UUID
    order_id: uuid.UUID
    entered_at: datetime
    verified_at: datetime | None
    value_text: str | None
    autoverified: bool


class ViolationDetail(ViolationOut):
    look_back: list[LookBackResult] = Field(
        description="Patient results of this instrument and test verified since the last "
        "passing run before the violation (released before the failure was known)"
    )


class StatusOut(Schema):
    instrument_id: uuid.UUID
    test_id: uuid.UUID
    in_rejection: bool
    blocked_since: datetime | None = Field(description="Results entered since are blocked")
    reason: str | None
    open_violations: int
    last_run_at: datetime | None
    last_run_outcome: RunOutcome | None
    live_lots: int
