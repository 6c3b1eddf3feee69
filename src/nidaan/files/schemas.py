"""Request and response shapes of the files API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from nidaan.files.enums import FilePurpose
from nidaan.kit.schemas import InputSchema, Schema


class FileOut(Schema):
    id: uuid.UUID
    purpose: FilePurpose
    document_id: uuid.UUID = Field(
        description="Shared by every version of one document; upload with it for a new version"
    )
    version: int = Field(description="1 for the first upload of the document")
    is_current: bool = Field(description="The newest version that is not deleted")
    filename: str = Field(examples=["prescription.pdf"])
    content_type: str = Field(
        description="Type detected from the content", examples=["application/pdf"]
    )
    size_bytes: int
    sha256: str = Field(description="SHA-256 of the stored bytes (hex)")
    patient_id: uuid.UUID | None
    order_id: uuid.UUID | None
    subject_type: str | None = Field(description="What Nidaan made it for, e.g. report")
    subject_id: uuid.UUID | None
    description: str | None
    created_at: datetime
    deleted_at: datetime | None
    delete_reason: str | None
    purge_after: datetime | None = Field(
        description="When a deleted file is removed from storage for good"
    )
    legal_hold: bool
    content_path: str = Field(description="API path that streams the file")


class PresignedUrlOut(Schema):
    url: str = Field(description="Anyone holding this URL may download the file: keep it secret")
    expires_at: datetime


class FileDelete(InputSchema):
    reason: str | None = Field(None, max_length=500)


class LegalHoldIn(InputSchema):
    legal_hold: bool


class PurgeIn(InputSchema):
    dry_run: bool = Field(True, description="Only list what would be purged")


class PurgeItemOut(Schema):
    file_id: uuid.UUID
    purpose: str
    filename: str
    size_bytes: int
    deleted_at: datetime | None
    purge_after: datetime | None


class PurgeOut(Schema):
    """The outcome of one purge (an action, not a paged list: hence ``files``)."""

    dry_run: bool
    count: int
    files: list[PurgeItemOut]
