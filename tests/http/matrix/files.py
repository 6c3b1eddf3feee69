"""Role matrix of the files endpoints (the context file is a prescription)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.files.domain import ANY_READER, ANY_UPLOADER, RULES
from nidaan.files.enums import FilePurpose
from nidaan.files.service import files_service
from nidaan.tenancy.models import Organisation
from tests.http.matrix.base import Case

RX = RULES[FilePurpose.PRESCRIPTION]

CASES = [
    # A JSON body is not an upload: allowed roles get 422 invalid_upload, others 403.
    Case("POST", "/api/v1/files", ANY_UPLOADER, {"purpose": "prescription"}, ok_statuses=(422,)),
    Case("GET", "/api/v1/files", ANY_READER),
    Case("POST", "/api/v1/files/purge", frozenset({Role.ADMIN}), {"dry_run": True}),
    Case("GET", "/api/v1/files/{file_id}", RX.readers),
    Case("GET", "/api/v1/files/{file_id}/versions", RX.readers),
    Case("GET", "/api/v1/files/{file_id}/content", RX.readers),
    Case("GET", "/api/v1/files/{file_id}/presigned-url", RX.readers),
    Case("DELETE", "/api/v1/files/{file_id}", RX.deleters),
    Case("PUT", "/api/v1/files/{file_id}/legal-hold", RX.deleters, {"legal_hold": True}),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from nidaan.files.service import UploadMetadata
    from nidaan.files.upload import bytes_stream
    from tests.files.conftest import pdf_bytes
    from tests.fixtures.objects import create_user
    from tests.fixtures.results import principal_of

    desk = await create_user(session, organisation, roles=("front_desk",))
    row = await files_service.upload(
        session,
        principal_of(desk),
        UploadMetadata(purpose=FilePurpose.PRESCRIPTION, filename="rx.pdf"),
        bytes_stream(pdf_bytes()),
    )
    return {"file_id": str(row.id)}
