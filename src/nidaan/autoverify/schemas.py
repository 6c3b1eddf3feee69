"""Request and response shapes of the autoverification API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from nidaan.kit.schemas import InputSchema, Schema

RULES_EXAMPLE = [
    {"type": "source", "allowed": ["instrument"]},
    {"type": "reportable_range", "low": 10, "high": 600},
    {"type": "no_critical"},
    {"type": "autoverification_range", "low": 60, "high": 200},
    {"type": "delta", "percent": 30, "window_days": 90},
    {"type": "instrument_flags"},
    {"type": "qc", "max_age_hours": 24},
    {"type": "specimen_indices", "H": 100, "I": 20, "L": 300},
    {"type": "no_comment"},
]


class RuleSetIn(InputSchema):
    enabled: bool = Field(description="Whether results of the test are autoverified now")
    rules: list[dict[str, Any]] = Field(
        max_length=50,
        description="Ordered rules, each {type, ...parameters}; see GET "
        "/api/v1/autoverify/rule-types",
        examples=[RULES_EXAMPLE],
    )
    note: str | None = Field(None, max_length=500, description="Why (validation reference)")
    version: int | None = Field(
        None, description="The version you edited (a stale one is a 409); empty for a new set"
    )


class RuleSetOut(Schema):
    id: uuid.UUID
    test_id: uuid.UUID
    test_code: str
    enabled: bool
    rules: list[dict[str, Any]]
    version: int
    approved_by_id: uuid.UUID = Field(description="The pathologist who approved this version")
    note: str | None
    updated_at: datetime


class RuleTypeOut(Schema):
    type: str
    parameters: str
    checks: str


class EvaluationOut(Schema):
    id: uuid.UUID
    result_id: uuid.UUID
    test_id: uuid.UUID
    entered_at: datetime
    rule_set_id: uuid.UUID | None
    rule_set_version: int | None
    outcome: str = Field(description="autoverified, stopped (waits for a person) or held")
    decided_by: str = Field(description="The rule that stopped it ('3:delta'), or 'all'")
    reason: str
    trail: list[dict[str, Any]] = Field(description="Every rule in order: passed and why")
    model_score: float | None = Field(description="The second opinion's score, if it looked")
    model_id: uuid.UUID | None
    trigger: str
    evaluated_at: datetime


class SimulationIn(InputSchema):
    since: datetime = Field(description="Results entered at or after (with a time zone)")
    until: datetime | None = Field(None, description="Results entered before (default now)")
    rules: dict[str, list[dict[str, Any]]] | None = Field(
        None,
        description="Rule sets to try, by test code; empty: the lab's current rule sets",
        examples=[{"GLUR": RULES_EXAMPLE}],
    )

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone")
        return value


class WronglyReleased(Schema):
    result_id: uuid.UUID
    test_code: str
    value: str | None
    entered_at: datetime
    why: str = Field(description="What the people who handled it found")


class TestSimulation(Schema):
    test_code: str
    results: int
    autoverified: int
    percent: float
    wrongly_released: int


class SimulationOut(Schema):
    since: datetime
    until: datetime
    results: int = Field(description="Historical results of tests with rules in the period")
    autoverified: int = Field(description="How many the rules would have verified")
    percent: float
    stopped_by: dict[str, int] = Field(description="Results stopped, by the first rule type")
    by_test: list[TestSimulation]
    wrongly_released: list[WronglyReleased] = Field(
        description="Results the rules would have released that people later corrected"
    )


class RetractIn(InputSchema):
    reason: str = Field(min_length=1, max_length=300, examples=["K inconsistent with ECG"])


class ModelOut(Schema):
    id: uuid.UUID
    created_at: datetime
    trained_on: str
    analytes: list[str]
    threshold: float
    metrics: dict[str, Any]
    active: bool
