from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from nidaan.kit.schemas import InputSchema, Schema
from nidaan.kit.text import MultilineText
from nidaan.tenancy.enums import BranchKind


class OrganisationOut(Schema):
    id: uuid.UUID
    name: str
    slug: str
    is_active: bool
    address: str | None = Field(description="Printed in the report header")
    phone: str | None
    email: str | None
    accreditation: str | None = Field(
        description="The accreditation line of reports (NABL certificate); none: not printed"
    )
    created_at: datetime


class OrganisationUpdate(InputSchema):
    """What the report header prints; null clears a field (no accreditation: no NABL line)."""

    name: str | None = Field(None, min_length=1, max_length=200)
    address: str | None = Field(None, max_length=500)
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)
    accreditation: str | None = Field(
        None,
        max_length=300,
        examples=["NABL accredited medical laboratory (ISO 15189:2022), certificate MC-5820"],
    )


class BranchCreate(InputSchema):
    code: str = Field(
        min_length=1,
        max_length=16,
        pattern=r"^[A-Z0-9]+$",
        examples=["CC1"],
        description="Short upper-case code used in accession numbers",
    )
    name: str = Field(min_length=1, max_length=200, examples=["Collection centre, Andheri"])
    kind: BranchKind
    address: MultilineText | None = Field(None, max_length=500)
    state: str | None = Field(None, max_length=64, examples=["Maharashtra"])


class BranchUpdate(InputSchema):
    name: str | None = Field(None, min_length=1, max_length=200)
    address: MultilineText | None = Field(None, max_length=500)
    state: str | None = Field(None, max_length=64)
    is_active: bool | None = None


class BranchOut(Schema):
    id: uuid.UUID
    organisation_id: uuid.UUID
    code: str
    name: str
    kind: BranchKind
    address: str | None
    state: str | None
    is_active: bool
    created_at: datetime
