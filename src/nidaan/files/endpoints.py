"""HTTP handlers for files, and the public route that serves the local store's signed links."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.config import get_settings
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.files.domain import (
    ANY_DELETER,
    ANY_READER,
    ANY_UPLOADER,
    LARGEST_FILE,
    MULTIPART_OVERHEAD,
    rule_for,
)
from nidaan.files.enums import FilePurpose
from nidaan.files.errors import (
    FileDeleted,
    FileMissingFromStore,
    FileNotFound,
    FileTooLarge,
    FileTypeNotAllowed,
    InvalidUpload,
    PurposeNotUploadable,
)
from nidaan.files.models import StoredFile
from nidaan.files.schemas import (
    FileDelete,
    FileOut,
    LegalHoldIn,
    PresignedUrlOut,
    PurgeIn,
    PurgeItemOut,
    PurgeOut,
)
from nidaan.files.service import UploadMetadata, files_service, parse_purpose
from nidaan.files.upload import MultipartFileReader
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.kit.storage import (
    LocalFileStore,
    ObjectNotFoundError,
    content_disposition,
    get_object_store,
)

router = APIRouter(prefix="/files", tags=["files"])
public_router = APIRouter(tags=["files"])

readers = require_roles(*ANY_READER)
uploaders = require_roles(*ANY_UPLOADER)
deleters = require_roles(*ANY_DELETER)
admins = require_roles(Role.ADMIN)

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["purpose", "file"],
                    "properties": {
                        "purpose": {"type": "string", "enum": [p.value for p in FilePurpose]},
                        "document_id": {
                            "type": "string",
                            "format": "uuid",
                            "description": "Upload a new version of this document",
                        },
                        "patient_id": {"type": "string", "format": "uuid"},
                        "order_id": {"type": "string", "format": "uuid"},
                        "description": {"type": "string", "maxLength": 500},
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "Last part of the form (fields first)",
                        },
                    },
                }
            }
        },
    }
}


def file_out(row: StoredFile) -> FileOut:
    return FileOut.model_validate(
        {
            **{name: getattr(row, name) for name in FileOut.model_fields if hasattr(row, name)},
            "content_path": f"/api/v1/files/{row.id}/content",
        }
    )


def _uuid_field(fields: dict[str, str], name: str) -> uuid.UUID | None:
    raw = fields.get(name)
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidInput(f"{name} is not a UUID.", field=name) from None


def _refuse_oversized(request: Request, purpose: str | None) -> None:
    """Refuse a body announced larger than any file allowed, before reading it."""
    length = request.headers.get("content-length")
    if not length or not length.isdigit():
        return
    limit = LARGEST_FILE
    if purpose:
        limit = rule_for(parse_purpose(purpose)).max_bytes
    if int(length) > limit + MULTIPART_OVERHEAD:
        raise FileTooLarge(
            f"The upload is larger than the {limit // (1024 * 1024)} MB allowed.", max_bytes=limit
        )


@router.post(
    "",
    status_code=201,
    response_model=FileOut,
    operation_id="files:upload",
    openapi_extra=UPLOAD_BODY,
    responses={
        **AUTH_ERRORS,
        **problem_responses(FileTooLarge, FileTypeNotAllowed, InvalidUpload, PurposeNotUploadable),
    },
)
async def upload_file(
    request: Request,
    purpose: str | None = Query(None, description="May be sent here instead of in the form"),
    principal: Principal = Depends(uploaders),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> FileOut:
    """Upload a prescription, consent form or attachment (multipart, streamed to storage).

    The type is read from the content (PDF, PNG or JPEG by purpose), the size is capped per
    purpose while streaming, and the SHA-256 is recorded. With ``document_id`` the upload is
    the next version of that document; the old versions are kept.
    """
    _refuse_oversized(request, purpose)
    reader = MultipartFileReader(request.headers.get("content-type", ""), request.stream())
    fields = await reader.read_fields()
    chosen = purpose or fields.get("purpose")
    _refuse_oversized(request, chosen)
    metadata = UploadMetadata(
        purpose=parse_purpose(chosen),
        filename=reader.filename,
        document_id=_uuid_field(fields, "document_id"),
        patient_id=_uuid_field(fields, "patient_id"),
        order_id=_uuid_field(fields, "order_id"),
        description=fields.get("description"),
    )
    row = await files_service.upload(session, principal, metadata, reader.file_chunks())
    return file_out(row)


@router.get(
    "",
    response_model=ListResource[FileOut],
    operation_id="files:list",
    responses={**AUTH_ERRORS},
)
async def list_files(
    purpose: FilePurpose | None = None,
    patient_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
    document_id: uuid.UUID | None = None,
    include_deleted: bool = False,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[FileOut]:
    """Files the caller's roles may read (current versions unless ``document_id`` is given)."""
    rows, total = await files_service.list(
        session,
        principal,
        page,
        purpose=purpose,
        patient_id=patient_id,
        order_id=order_id,
        document_id=document_id,
        include_deleted=include_deleted,
    )
    return ListResource[FileOut].build([file_out(r) for r in rows], total, page.page, page.limit)


@router.post(
    "/purge",
    response_model=PurgeOut,
    operation_id="files:purge",
    responses={**AUTH_ERRORS},
)
async def purge_files(
    body: PurgeIn,
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PurgeOut:
    """Purge (or with ``dry_run``, list) this organisation's deleted files past retention."""
    items = await files_service.purge(
        session, dry_run=body.dry_run, organisation_id=principal.organisation_id
    )
    return PurgeOut(
        dry_run=body.dry_run,
        count=len(items),
        files=[PurgeItemOut.model_validate(item) for item in items],
    )


@router.get(
    "/{file_id}",
    response_model=FileOut,
    operation_id="files:get",
    responses={**AUTH_ERRORS, **problem_responses(FileNotFound, FileDeleted)},
)
async def get_file(
    file_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> FileOut:
    """A file's record (410 ``file_deleted`` once deleted)."""
    return file_out(await files_service.get(session, principal, file_id))


@router.get(
    "/{file_id}/versions",
    response_model=ListResource[FileOut],
    operation_id="files:versions",
    responses={**AUTH_ERRORS, **problem_responses(FileNotFound)},
)
async def file_versions(
    file_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[FileOut]:
    """Every version of the file's document, newest first, deleted ones included."""
    rows = await files_service.versions(session, principal, file_id)
    return ListResource[FileOut].page_of([file_out(r) for r in rows], page)


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    operation_id="files:content",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file"},
        **AUTH_ERRORS,
        **problem_responses(FileNotFound, FileDeleted, FileMissingFromStore),
    },
)
async def file_content(
    file_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> StreamingResponse:
    """The file's bytes, streamed, as an attachment download."""
    row, chunks = await files_service.content(session, principal, file_id)
    return _download(chunks, row.content_type, row.filename, row.sha256, row.size_bytes)


@router.get(
    "/{file_id}/presigned-url",
    response_model=PresignedUrlOut,
    operation_id="files:presigned_url",
    responses={**AUTH_ERRORS, **problem_responses(FileNotFound, FileDeleted)},
)
async def presigned_url(
    file_id: uuid.UUID,
    expiry_seconds: int | None = Query(
        None, ge=1, le=604800, description="Link life in seconds (default 15 minutes)"
    ),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PresignedUrlOut:
    """A download link that works without logging in until it expires (S3's own presigned
    URL, or an HMAC-signed link served by Nidaan for the local store)."""
    link = await files_service.presigned_url(session, principal, file_id, expiry_seconds)
    return PresignedUrlOut(url=link.url, expires_at=link.expires_at)


@router.delete(
    "/{file_id}",
    response_model=FileOut,
    operation_id="files:delete",
    responses={**AUTH_ERRORS, **problem_responses(FileNotFound)},
)
async def delete_file(
    file_id: uuid.UUID,
    reason: str | None = Query(None, max_length=500),
    principal: Principal = Depends(deleters),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> FileOut:
    """Soft-delete a file version: hidden at once, purged from storage after retention."""
    body = FileDelete(reason=reason)
    return file_out(await files_service.delete(session, principal, file_id, body.reason))


@router.put(
    "/{file_id}/legal-hold",
    response_model=FileOut,
    operation_id="files:legal_hold",
    responses={**AUTH_ERRORS, **problem_responses(FileNotFound)},
)
async def set_legal_hold(
    file_id: uuid.UUID,
    body: LegalHoldIn,
    principal: Principal = Depends(deleters),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> FileOut:
    """Keep (or release) a file past its retention, e.g. for a medico-legal case."""
    return file_out(
        await files_service.set_legal_hold(session, principal, file_id, body.legal_hold)
    )


# ------------------------------------------------------------------------ public


def _download(
    chunks: AsyncIterator[bytes],
    content_type: str,
    filename: str | None,
    sha256: str | None = None,
    size: int | None = None,
) -> StreamingResponse:
    headers = {
        "Content-Disposition": content_disposition(filename),
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if sha256:
        headers["ETag"] = f'"{sha256}"'
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type=content_type, headers=headers)


@public_router.get("/files/{key:path}", include_in_schema=False)
async def signed_file(
    key: str,
    expires: int = Query(...),
    signature: str = Query(..., max_length=100),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """A stored object behind a signed, expiring link (the local store's presigned URL).

    Expired, tampered and deleted files' links all get the same 404.
    """
    store = get_object_store(get_settings())
    if not isinstance(store, LocalFileStore) or not store.verify_signature(key, expires, signature):
        raise NotFound("This link is invalid or has expired.")
    row = await files_service.by_storage_key(session, key)
    if row is not None and row.deleted_at is not None:
        raise NotFound("This link is invalid or has expired.")
    try:
        chunks = aiter(store.iter_bytes(key))
        first = await anext(chunks, b"")
    except ObjectNotFoundError:
        raise NotFound("This link is invalid or has expired.") from None

    async def stream() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    if row is not None:
        return _download(stream(), row.content_type, row.filename, row.sha256, row.size_bytes)
    return _download(
        stream(),
        await store.content_type(key),
        await store.filename(key) or key.rsplit("/", 1)[-1],
    )
