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
    created_at: datetime


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
