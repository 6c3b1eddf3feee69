"""Request and response shapes of the patients API.

Mobile numbers and ABHA numbers are accepted in full but only ever returned masked.
Aadhaar numbers are refused outright: a lab has no business storing them.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import EmailStr, Field, model_validator

from nidaan.kit.schemas import InputSchema, Schema
from nidaan.kit.text import MultilineText
from nidaan.patients.domain import LANGUAGES
from nidaan.patients.enums import DuplicateFlagStatus, Sex

Language = Literal["en", "hi", "bn", "gu", "kn", "ml", "mr", "or", "pa", "ta", "te", "ur", "as"]
assert set(Language.__args__) == set(LANGUAGES)  # type: ignore[attr-defined]

AADHAAR_REFUSED = (
    "Nidaan never accepts or stores Aadhaar numbers. Identify the patient by name, age, "
    "mobile and, if they have one, their ABHA number (14 digits) or ABHA address."
)


def _refuse_aadhaar(data: Any) -> Any:
    if isinstance(data, dict) and any(
        "aadhaar" in str(k).lower() or "aadhar" in str(k).lower() for k in data
    ):
        raise ValueError(AADHAAR_REFUSED)
    return data


class _PatientFields(InputSchema):
    mobile: str | None = Field(None, description="Indian mobile, e.g. 98765 43210")
    email: EmailStr | None = None
    address: MultilineText | None = Field(None, max_length=500)
    city: str | None = Field(None, max_length=100)
    state: str | None = Field(None, max_length=64, examples=["Karnataka"])
    pincode: str | None = Field(None, pattern=r"^[1-9][0-9]{5}$", examples=["560001"])
    abha_number: str | None = Field(
        None, description="14-digit ABHA number, e.g. 91-1234-5678-9012", examples=[None]
    )
    abha_address: str | None = Field(None, max_length=120, examples=["asha.verma@abdm"])
    referring_doctor: str | None = Field(None, max_length=200, examples=["Dr. R. Iyer"])
    pregnant: bool | None = None
    weight_kg: Decimal | None = Field(None, gt=0, lt=500, decimal_places=2)

    @model_validator(mode="before")
    @classmethod
    def _no_aadhaar(cls, data: Any) -> Any:
        return _refuse_aadhaar(data)


class PatientCreate(_PatientFields):
    """Give ``date_of_birth``, or a stated age (``age_years``; infants may add months/days)."""

    id: uuid.UUID | None = Field(None, description="Client-made UUIDv7 (offline registration)")
    full_name: str = Field(min_length=1, max_length=200, examples=["Asha Verma"])
    sex: Sex
    date_of_birth: date | None = None
    age_years: int | None = Field(None, ge=0, le=130, examples=[45])
    age_months: int | None = Field(None, ge=0, le=24)
    age_days: int | None = Field(None, ge=0, le=60)
    preferred_language: Language = "en"
    registered_at_branch_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _birth_or_age(self) -> PatientCreate:
        stated = (self.age_years, self.age_months, self.age_days)
        if self.date_of_birth is None and all(v is None for v in stated):
            raise ValueError("give date_of_birth or the patient's age (age_years)")
        if self.date_of_birth is not None and any(v is not None for v in stated):
            raise ValueError("give date_of_birth or an age, not both")
        return self


class PatientUpdate(_PatientFields):
    """Fields to change (``null`` clears an optional one); send the ``version`` you loaded."""

    version: int = Field(description="The version you edited; a stale one is a 409")
    full_name: str | None = Field(None, min_length=1, max_length=200)
    sex: Sex | None = None
    date_of_birth: date | None = None
    age_years: int | None = Field(None, ge=0, le=130)
    age_months: int | None = Field(None, ge=0, le=24)
    age_days: int | None = Field(None, ge=0, le=60)
    preferred_language: Language | None = None

    @model_validator(mode="after")
    def _not_both(self) -> PatientUpdate:
        stated = (self.age_years, self.age_months, self.age_days)
        if self.date_of_birth is not None and any(v is not None for v in stated):
            raise ValueError("give date_of_birth or an age, not both")
        return self


class PatientOut(Schema):
    id: uuid.UUID
    organisation_id: uuid.UUID
    mrn: str = Field(examples=["MRN-000123"])
    full_name: str
    sex: str
    date_of_birth: date | None
    dob_estimated: bool = Field(description="True when derived from a stated age")
    age_years: int | None = Field(description="Completed years today (India time)")
    mobile_masked: str | None = Field(examples=["+91******3210"])
    email: str | None
    address: str | None
    city: str | None
    state: str | None
    pincode: str | None
    preferred_language: str
    abha_number_masked: str | None = Field(examples=["**-****-****-9012"])
    abha_address: str | None
    referring_doctor: str | None
    pregnant: bool | None
    weight_kg: Decimal | None
    merged_into_id: uuid.UUID | None
    is_active: bool
    registered_at_branch_id: uuid.UUID | None
    version: int
    created_at: datetime
    updated_at: datetime


class PatientBrief(Schema):
    id: uuid.UUID
    mrn: str
    full_name: str
    sex: str
    date_of_birth: date | None
    dob_estimated: bool
    mobile_masked: str | None
    is_active: bool


class DuplicateCandidateOut(Schema):
    flag_id: uuid.UUID
    score: int = Field(description="0-100; 70 or more is a likely duplicate")
    reasons: list[str] = Field(examples=[["same mobile", "similar name", "same date of birth"]])
    candidate: PatientBrief


class RegistrationOut(Schema):
    patient: PatientOut
    possible_duplicates: list[DuplicateCandidateOut] = Field(
        description="Likely existing records of the same person, flagged for review (not merged)"
    )


class DuplicateFlagOut(Schema):
    id: uuid.UUID
    status: DuplicateFlagStatus
    score: int
    reasons: list[str]
    created_at: datetime
    resolved_at: datetime | None
    patient: PatientBrief = Field(description="The newly registered record")
    candidate: PatientBrief = Field(description="The existing record it resembles")


class MergeRequest(InputSchema):
    duplicate_id: uuid.UUID = Field(description="The record to fold into the one in the path")


class MergeOut(Schema):
    kept: PatientOut
    merged: PatientOut
