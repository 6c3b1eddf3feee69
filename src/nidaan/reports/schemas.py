"""Response shapes of the reports API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from nidaan.kit.schemas import Schema


class ReportOut(Schema):
    id: uuid.UUID
    order_id: uuid.UUID
    report_number: str = Field(examples=["RPT-2026-000418"])
    report_version: int = Field(description="1 for the first report; amendments add versions")
    is_current: bool = Field(description="False once a later version replaced it")
    amended: bool = Field(description="True for amended and corrected versions")
    status: Literal["provisional", "final", "amended", "corrected"] = Field(
        description="What this version is; printed on every page"
    )
    changes: str | None = Field(
        description="Tests whose printed result changed since the version it replaced",
        examples=["Potassium: corrected"],
    )
    amendment_reason: str | None
    supersedes_id: uuid.UUID | None = Field(description="The version this one replaced")
    language: str = Field(examples=["en", "hi"])
    sha256: str = Field(description="SHA-256 of the PDF, also shown on the verification page")
    page_count: int
    size_bytes: int
    created_at: datetime = Field(description="When this version was issued (UTC)")
    pdf_path: str = Field(
        description="API path of this version's PDF", examples=["/api/v1/reports/…/pdf"]
    )


class ReportVerification(Schema):
    """What the public verification page confirms (no personal data beyond initials)."""

    valid: Literal[True] = True
    lab_name: str
    report_number: str
    report_version: int
    issued_at: datetime
    patient_initials: str = Field(examples=["S. S."])
    sha256: str
    status: Literal["current", "superseded"]
    is_current: bool
    amended: bool
    superseded_by: str | None = Field(
        None, description="Report number of the current version when this one is superseded"
    )


class ProvisionalRequested(Schema):
    order_id: uuid.UUID
    pending_tests: list[str] = Field(description="Tests the provisional report names as pending")
