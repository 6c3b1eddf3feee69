"""The file operations on the GraphQL endpoint, named as the product spec names them:
``uploadFile(file, metadata)``, ``getFile(fileId)``, ``getPresignedUrl(fileId,
expirySeconds)`` and ``deleteFile(fileId)``. They call the same service as REST, so the
type, size, role and organisation rules are the same.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.file_uploads import Upload
from strawberry.types import Info

from nidaan.auth.principal import Principal
from nidaan.files.models import StoredFile
from nidaan.files.service import UploadMetadata, files_service, parse_purpose
from nidaan.kit.errors import InvalidInput, NidaanError

T = TypeVar("T")
CHUNK = 256 * 1024


@strawberry.type(name="File", description="One stored version of a document.")
class FileType:
    id: strawberry.ID
    purpose: str
    document_id: strawberry.ID
    version: int
    is_current: bool
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    patient_id: strawberry.ID | None
    order_id: strawberry.ID | None
    subject_type: str | None
    subject_id: strawberry.ID | None
    description: str | None
    created_at: datetime
    deleted_at: datetime | None
    purge_after: datetime | None
    legal_hold: bool
    content_path: str


@strawberry.type(name="PresignedUrl")
class PresignedUrlType:
    url: str = strawberry.field(description="Works without login until it expires; keep secret")
    expires_at: datetime


@strawberry.input(description="What the uploader says about the file.")
class FileMetadataInput:
    purpose: str = strawberry.field(description="prescription, consent_form or attachment")
    document_id: strawberry.ID | None = strawberry.field(
        default=None, description="Upload a new version of this document"
    )
    patient_id: strawberry.ID | None = None
    order_id: strawberry.ID | None = None
    description: str | None = None
    filename: str | None = strawberry.field(
        default=None, description="Download name (default: the uploaded file's name)"
    )


def _ctx(info: Info) -> tuple[AsyncSession, Principal]:
    return info.context["session"], info.context["principal"]


async def _guarded(session: AsyncSession, work: Callable[[], Awaitable[T]]) -> T:
    """Run a resolver in a savepoint; on an expected error undo its writes and answer with
    REST's stable code (the request's other operations are unaffected)."""
    savepoint = await session.begin_nested()
    try:
        result = await work()
    except NidaanError as error:
        await savepoint.rollback()
        raise GraphQLError(
            error.detail,
            extensions={"code": error.code, "status": error.status_code, **error.data},
        ) from None
    except BaseException:
        await savepoint.rollback()
        raise
    await savepoint.commit()
    return result


def _uuid(value: Any, name: str) -> uuid.UUID | None:
    if value in (None, ""):
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{name} is not a UUID.", field=name) from None


def _required_uuid(value: Any, name: str) -> uuid.UUID:
    parsed = _uuid(value, name)
    if parsed is None:
        raise InvalidInput(f"{name} is required.", field=name)
    return parsed


def _id(value: uuid.UUID | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


def file_type(row: StoredFile) -> FileType:
    return FileType(
        id=strawberry.ID(str(row.id)),
        purpose=row.purpose,
        document_id=strawberry.ID(str(row.document_id)),
        version=row.version,
        is_current=row.is_current,
        filename=row.filename,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        patient_id=_id(row.patient_id),
        order_id=_id(row.order_id),
        subject_type=row.subject_type,
        subject_id=_id(row.subject_id),
        description=row.description,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
        purge_after=row.purge_after,
        legal_hold=row.legal_hold,
        content_path=f"/api/v1/files/{row.id}/content",
    )


async def _chunks(upload: Any) -> AsyncIterator[bytes]:
    """The uploaded part in chunks (Starlette spooled it to a temporary file, not memory)."""
    while chunk := await upload.read(CHUNK):
        yield chunk


@strawberry.type
class Query:
    @strawberry.field(description="A file's record (access rules as GET /api/v1/files/{id}).")
    async def get_file(self, info: Info, file_id: strawberry.ID) -> FileType:
        session, principal = _ctx(info)

        async def work() -> FileType:
            row = await files_service.get(session, principal, _required_uuid(file_id, "fileId"))
            return file_type(row)

        return await _guarded(session, work)

    @strawberry.field(description="A download link valid for expirySeconds (1 s to 7 days).")
    async def get_presigned_url(
        self, info: Info, file_id: strawberry.ID, expiry_seconds: int | None = None
    ) -> PresignedUrlType:
        session, principal = _ctx(info)

        async def work() -> PresignedUrlType:
            link = await files_service.presigned_url(
                session, principal, _required_uuid(file_id, "fileId"), expiry_seconds
            )
            return PresignedUrlType(url=link.url, expires_at=link.expires_at)

        return await _guarded(session, work)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Upload a file (GraphQL multipart request).")
    async def upload_file(self, info: Info, file: Upload, metadata: FileMetadataInput) -> FileType:
        session, principal = _ctx(info)

        async def work() -> FileType:
            details = UploadMetadata(
                purpose=parse_purpose(metadata.purpose),
                filename=metadata.filename or getattr(file, "filename", None),
                document_id=_uuid(metadata.document_id, "documentId"),
                patient_id=_uuid(metadata.patient_id, "patientId"),
                order_id=_uuid(metadata.order_id, "orderId"),
                description=metadata.description,
            )
            row = await files_service.upload(session, principal, details, _chunks(file))
            return file_type(row)

        return await _guarded(session, work)

    @strawberry.mutation(description="Soft-delete a file version (purged after retention).")
    async def delete_file(
        self, info: Info, file_id: strawberry.ID, reason: str | None = None
    ) -> FileType:
        session, principal = _ctx(info)

        async def work() -> FileType:
            row = await files_service.delete(
                session, principal, _required_uuid(file_id, "fileId"), reason
            )
            return file_type(row)

        return await _guarded(session, work)
