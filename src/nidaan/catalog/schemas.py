"""Request and response shapes of the catalogue API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator, model_validator

from nidaan.catalog.enums import ResultType, Sex
from nidaan.kit.schemas import InputSchema, Schema
from nidaan.kit.text import MultilineText

CODE_PATTERN = r"^[A-Z][A-Z0-9_]{0,31}$"
LOINC_PATTERN = r"^\d{1,7}-\d$"
STABILITY_DESCRIPTION = (
    "Hours a sample stays fit for this test between collection and receipt, when stricter "
    "than its container's default (e.g. 2 for ammonia in an EDTA tube); the stricter of the "
    "two flags a late tube for rejection. null = the container's default decides"
)


def _check_factors(value: dict[str, Decimal]) -> dict[str, Decimal]:
    for unit, factor in value.items():
        if not unit.strip() or len(unit) > 32:
            raise ValueError("units are 1 to 32 characters")
        if factor <= 0:
            raise ValueError(f"the factor for {unit} must be positive")
    return value


class Choice(InputSchema):
    code: str = Field(min_length=1, max_length=32, examples=["POS"])
    text: str = Field(min_length=1, max_length=100, examples=["Reactive"])
    abnormal: bool = Field(False, description="Flag 'A' on the report when chosen")


class ReferenceRangeIn(InputSchema):
    """One band; all given conditions must hold. Ages: ``age_min``/``age_max`` as text
    ("28d", "1y", "18y") or ``age_min_days``/``age_max_days``; min inclusive, max exclusive."""

    sex: Sex | None = Field(None, description="null = any sex")
    age_min: str | None = Field(None, examples=["18y"])
    age_max: str | None = Field(None, examples=["65y"])
    age_min_days: int | None = Field(None, ge=0)
    age_max_days: int | None = Field(None, ge=1)
    pregnant: bool | None = Field(None, description="true = only in pregnancy; null = any")
    # numeric(14,4) columns
    low: Decimal | None = Field(None, gt=-(10**10), lt=10**10)
    high: Decimal | None = Field(None, gt=-(10**10), lt=10**10)
    critical_low: Decimal | None = Field(None, gt=-(10**10), lt=10**10)
    critical_high: Decimal | None = Field(None, gt=-(10**10), lt=10**10)
    text: MultilineText | None = Field(None, max_length=300, examples=["< 200 desirable"])

    @model_validator(mode="after")
    def _consistent(self) -> ReferenceRangeIn:
        if self.age_min is not None and self.age_min_days is not None:
            raise ValueError("give age_min or age_min_days, not both")
        if self.age_max is not None and self.age_max_days is not None:
            raise ValueError("give age_max or age_max_days, not both")
        limits = (self.low, self.high, self.critical_low, self.critical_high)
        if all(v is None for v in limits) and not self.text:
            raise ValueError("a range needs low, high, critical limits or text")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("low must not be above high")
        if None not in (self.critical_low, self.low) and self.critical_low > self.low:  # type: ignore[operator]
            raise ValueError("critical_low must not be above low")
        if None not in (self.critical_high, self.high) and self.critical_high < self.high:  # type: ignore[operator]
            raise ValueError("critical_high must not be below high")
        return self


class ReferenceRangeOut(Schema):
    id: uuid.UUID
    test_id: uuid.UUID
    sex: str | None
    age_min_days: int | None
    age_max_days: int | None
    pregnant: bool | None
    low: Decimal | None
    high: Decimal | None
    critical_low: Decimal | None
    critical_high: Decimal | None
    text: str | None


class _TestFields(InputSchema):
    loinc: str | None = Field(None, pattern=LOINC_PATTERN, examples=["2823-3"])
    method: str | None = Field(None, max_length=200, examples=["Ion-selective electrode"])
    unit: str | None = Field(None, max_length=32, examples=["mmol/L"])
    unit_conversions: dict[str, Decimal] = Field(
        default_factory=dict,
        description="Other units accepted at entry and the factor to the test's unit",
        examples=[{"mmol/L": "18.016"}],
    )
    decimals: int = Field(0, ge=0, le=6)
    formula: str | None = Field(None, max_length=1000, examples=["CHOL - HDL - TG/5"])
    choices: list[Choice] = Field(default_factory=list)
    tat_minutes: int = Field(1440, ge=1, le=60 * 24 * 60)
    price: Decimal = Field(Decimal("0"), ge=0, max_digits=12, decimal_places=2)
    required_verifications: int = Field(1, ge=1, le=2)
    # Bounded by their columns (numeric(8,2) and numeric(14,4)): a 422, not an overflow.
    delta_percent: Decimal | None = Field(None, gt=0, lt=1_000_000)
    delta_absolute: Decimal | None = Field(None, gt=0, lt=10**10)
    delta_window_days: int | None = Field(None, ge=1, le=36500)
    accredited: bool = True
    referral_lab: str | None = Field(
        None,
        max_length=200,
        description="Referred out: the laboratory that performs the test (printed on reports)",
        examples=["Metropolis Healthcare, Mumbai (NABL MC-2212)"],
    )
    stability_hours: int | None = Field(
        None, ge=1, le=168, description=STABILITY_DESCRIPTION, examples=[2]
    )
    sort_order: int = 0

    @field_validator("unit_conversions")
    @classmethod
    def _factors(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return _check_factors(value)


class CatalogTestCreate(_TestFields):
    id: uuid.UUID | None = Field(None, description="Client-made UUIDv7 (offline creation)")
    code: str = Field(pattern=CODE_PATTERN, examples=["K"], description="Short, upper case")
    name: str = Field(min_length=1, max_length=200, examples=["Potassium"])
    department: str = Field(min_length=1, max_length=64, examples=["Biochemistry"])
    specimen_type: str = Field(min_length=1, max_length=64, examples=["serum"])
    container: str = Field(min_length=1, max_length=64, examples=["sst_yellow"])
    result_type: ResultType
    ranges: list[ReferenceRangeIn] = Field(default_factory=list)


class CatalogTestUpdate(InputSchema):
    """Fields to change; ``code`` and ``result_type`` never change (results refer to them)."""

    version: int = Field(description="The version you edited; a stale one is a 409")
    name: str | None = Field(None, min_length=1, max_length=200)
    loinc: str | None = Field(None, pattern=LOINC_PATTERN)
    department: str | None = Field(None, min_length=1, max_length=64)
    specimen_type: str | None = Field(None, min_length=1, max_length=64)
    container: str | None = Field(None, min_length=1, max_length=64)
    method: str | None = Field(None, max_length=200)
    unit: str | None = Field(None, max_length=32)
    unit_conversions: dict[str, Decimal] | None = None
    decimals: int | None = Field(None, ge=0, le=6)
    formula: str | None = Field(None, max_length=1000)
    choices: list[Choice] | None = None
    tat_minutes: int | None = Field(None, ge=1, le=60 * 24 * 60)
    price: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=2)
    required_verifications: int | None = Field(None, ge=1, le=2)
    # Bounded by their columns (numeric(8,2) and numeric(14,4)): a 422, not an overflow.
    delta_percent: Decimal | None = Field(None, gt=0, lt=1_000_000)
    delta_absolute: Decimal | None = Field(None, gt=0, lt=10**10)
    delta_window_days: int | None = Field(None, ge=1, le=36500)
    accredited: bool | None = None
    referral_lab: str | None = Field(None, max_length=200)
    stability_hours: int | None = Field(
        None, ge=1, le=168, description=STABILITY_DESCRIPTION + " (send null to clear)"
    )
    sort_order: int | None = None
    is_active: bool | None = None

    @field_validator("unit_conversions")
    @classmethod
    def _factors(cls, value: dict[str, Decimal] | None) -> dict[str, Decimal] | None:
        return None if value is None else _check_factors(value)


class CatalogTestOut(Schema):
    id: uuid.UUID
    organisation_id: uuid.UUID
    code: str
    name: str
    loinc: str | None
    department: str
    specimen_type: str
    container: str
    method: str | None
    unit: str | None
    unit_conversions: dict[str, Any]
    result_type: str
    decimals: int
    formula: str | None
    choices: list[dict[str, Any]]
    tat_minutes: int
    price: Decimal
    required_verifications: int
    delta_percent: Decimal | None
    delta_absolute: Decimal | None
    delta_window_days: int | None
    accredited: bool
    referral_lab: str | None
    stability_hours: int | None = Field(description=STABILITY_DESCRIPTION)
    sort_order: int
    is_active: bool
    version: int
    created_at: datetime
    updated_at: datetime
    ranges: list[ReferenceRangeOut] = Field(default_factory=list)


class PanelCreate(InputSchema):
    id: uuid.UUID | None = Field(None, description="Client-made UUIDv7 (offline creation)")
    code: str = Field(pattern=CODE_PATTERN, examples=["LIPID"])
    name: str = Field(min_length=1, max_length=200, examples=["Lipid profile"])
    price: Decimal = Field(Decimal("0"), ge=0, max_digits=12, decimal_places=2)
    tests: list[str] = Field(
        min_length=1, description="Test codes or ids, in report order", examples=[["CHOL", "HDL"]]
    )


class PanelUpdate(InputSchema):
    version: int = Field(description="The version you edited; a stale one is a 409")
    name: str | None = Field(None, min_length=1, max_length=200)
    price: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=2)
    is_active: bool | None = None
    tests: list[str] | None = Field(None, min_length=1, description="Replaces the list")


class PanelTestOut(Schema):
    test_id: uuid.UUID
    code: str
    name: str
    position: int


class PanelOut(Schema):
    id: uuid.UUID
    organisation_id: uuid.UUID
    code: str
    name: str
    price: Decimal
    is_active: bool
    version: int
    created_at: datetime
    tests: list[PanelTestOut]
