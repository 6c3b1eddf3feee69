"""The files API on both stores: upload checks, versions, access, links, delete, purge."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.files.models import StoredFile
from nidaan.files.service import files_service
from nidaan.kit.storage import ObjectStore
from nidaan.kit.time import utcnow
from nidaan.tenancy.models import Organisation
from tests.files.conftest import dicom_bytes, jpeg_bytes, pdf_bytes, png_bytes
from tests.files.test_stores import fetch
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import bearer_for, create_user

pytestmark = pytest.mark.usefixtures("object_store")


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    *,
    name: str = "rx.pdf",
    claimed: str = "application/pdf",
    **fields: str,
) -> httpx.Response:
    form = {"purpose": "prescription", **fields}
    return await client.post(
        "/api/v1/files", data=form, files={"file": (name, data, claimed)}, headers=headers
    )


async def file_rows(session: AsyncSession, organisation: Organisation) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(StoredFile)
            .where(StoredFile.organisation_id == organisation.id)
        )
        or 0
    )


@pytest.fixture
async def desk(session: AsyncSession, organisation: Organisation) -> dict[str, str]:
    return bearer_for(await create_user(session, organisation, roles=("front_desk",)))


@pytest.fixture
async def admin(session: AsyncSession, organisation: Organisation) -> dict[str, str]:
    return bearer_for(await create_user(session, organisation, roles=("admin",)))


@pytest.mark.parametrize(
    ("make", "name", "expected_type", "extension"),
    [
        (pdf_bytes, "prescription.pdf", "application/pdf", ".pdf"),
        (png_bytes, "photo.png", "image/png", ".png"),
        (jpeg_bytes, "IMG_2041.JPG", "image/jpeg", ".JPG"),
        # The name and the client's type lie; the content decides.
        (pdf_bytes, "scan.png", "application/pdf", ".png.pdf"),
    ],
)
async def test_upload_records_type_size_and_sha256(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    object_store: ObjectStore,
    desk: dict[str, str],
    make,  # type: ignore[no-untyped-def]
    name: str,
    expected_type: str,
    extension: str,
) -> None:
    data = make()
    patient = await create_patient(session, organisation)
    response = await upload(client, desk, data, name=name, patient_id=str(patient.id))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["content_type"] == expected_type
    assert body["size_bytes"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["filename"].endswith(extension)
    assert (body["version"], body["is_current"]) == (1, True)
    assert body["patient_id"] == str(patient.id)
    row = await session.get(StoredFile, body["id"])
    assert row is not None
    assert await object_store.get(row.storage_key) == data
    # The key is random: no name, no patient in it.
    assert row.storage_key == f"{organisation.id}/prescription/{row.id}"
    content = await client.get(body["content_path"], headers=desk)
    assert content.status_code == 200
    assert content.content == data
    assert content.headers["content-type"] == expected_type
    assert content.headers["x-content-type-options"] == "nosniff"
    assert content.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"<html><script>alert(1)</script></html>" * 10, "report.pdf"),
        (dicom_bytes(), "scan.pdf"),
        (b"MZ\x90\x00\x03" + b"\x00" * 500, "prescription.pdf"),
        (b"PK\x03\x04" + b"\x00" * 500, "consent.pdf"),
    ],
)
async def test_types_outside_the_allow_list_are_refused_and_leave_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    desk: dict[str, str],
    data: bytes,
    name: str,
) -> None:
    before = await file_rows(session, organisation)
    response = await upload(client, desk, data, name=name)
    assert response.status_code == 415, response.text
    problem = response.json()
    assert problem["code"] == "file_type_not_allowed"
    assert problem["detected_type"] != "application/pdf"
    assert await file_rows(session, organisation) == before


async def test_size_cap_per_purpose_is_enforced_while_streaming(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    object_store: ObjectStore,
    desk: dict[str, str],
) -> None:
    # A prescription may be 20 MB, an attachment 50 MB.
    big = pdf_bytes(padding=21 * 1024 * 1024)
    refused = await upload(client, desk, big)
    assert refused.status_code == 413, refused.text
    assert refused.json()["code"] == "file_too_large"
    assert await file_rows(session, organisation) == 0
    accepted = await upload(client, desk, big, purpose="attachment")
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["size_bytes"] == len(big)


async def test_oversized_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient, desk: dict[str, str]
) -> None:
    async def never_read():  # type: ignore[no-untyped-def]
        raise AssertionError("the body was read")
        yield b""

    response = await client.post(
        "/api/v1/files?purpose=prescription",
        content=never_read(),
        headers={
            **desk,
            "content-type": "multipart/form-data; boundary=x",
            "content-length": str(60 * 1024 * 1024),
        },
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("form", "data", "code"),
    [
        ({"purpose": "report"}, pdf_bytes(), "purpose_not_uploadable"),
        ({"purpose": "x-ray"}, pdf_bytes(), "invalid_input"),
        ({"purpose": "prescription"}, b"", "empty_file"),
        ({"purpose": "prescription", "patient_id": "not-a-uuid"}, pdf_bytes(), "invalid_input"),
        (
            {"purpose": "prescription", "document_id": "01900000-0000-7000-8000-000000000000"},
            pdf_bytes(),
            "invalid_input",
        ),
    ],
)
async def test_bad_uploads_get_a_problem_and_change_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    desk: dict[str, str],
    form: dict[str, str],
    data: bytes,
    code: str,
) -> None:
    response = await client.post(
        "/api/v1/files", data=form, files={"file": ("x.pdf", data)}, headers=desk
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert await file_rows(session, organisation) == 0


async def test_not_multipart_is_refused(client: httpx.AsyncClient, desk: dict[str, str]) -> None:
    response = await client.post("/api/v1/files", json={"purpose": "prescription"}, headers=desk)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_upload"


async def test_new_versions_keep_the_old_ones(
    client: httpx.AsyncClient, desk: dict[str, str]
) -> None:
    original = pdf_bytes(1)
    first = (await upload(client, desk, original)).json()
    second = await upload(client, desk, pdf_bytes(2), document_id=first["document_id"])
    assert second.status_code == 201, second.text
    second_body = second.json()
    assert second_body["version"] == 2
    assert second_body["document_id"] == first["document_id"]
    versions = (
        await client.get(f"/api/v1/files/{second_body['id']}/versions", headers=desk)
    ).json()["items"]
    assert [(v["version"], v["is_current"]) for v in versions] == [(2, True), (1, False)]
    old = await client.get(f"/api/v1/files/{first['id']}/content", headers=desk)
    assert old.content == original
    listed = (await client.get("/api/v1/files", headers=desk)).json()
    assert [i["id"] for i in listed["items"]] == [second_body["id"]]
    # Deleting the newest makes the previous version current again.
    await client.delete(f"/api/v1/files/{second_body['id']}", headers=desk)
    listed = (await client.get("/api/v1/files", headers=desk)).json()
    assert [i["id"] for i in listed["items"]] == [first["id"]]


async def test_presigned_links_and_local_link_tampering(
    client: httpx.AsyncClient, object_store: ObjectStore, desk: dict[str, str]
) -> None:
    data = pdf_bytes()
    created = (await upload(client, desk, data)).json()
    link = await client.get(
        f"/api/v1/files/{created['id']}/presigned-url",
        params={"expiry_seconds": 300},
        headers=desk,
    )
    assert link.status_code == 200, link.text
    body = link.json()
    assert (
        290
        <= (
            (
                __import__("datetime").datetime.fromisoformat(body["expires_at"]) - utcnow()
            ).total_seconds()
        )
        <= 300
    )
    downloaded = await fetch(client, body["url"])
    assert downloaded.status_code == 200
    assert downloaded.content == data
    for bad in (0, 604801):
        refused = await client.get(
            f"/api/v1/files/{created['id']}/presigned-url",
            params={"expiry_seconds": bad},
            headers=desk,
        )
        assert refused.status_code == 422
    if object_store.kind != "local":
        return
    parts = urlsplit(body["url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for changed in (
        {**query, "expires": str(int(query["expires"]) + 60)},
        {**query, "signature": query["signature"][::-1]},
        {**query, "expires": str(int(utcnow().timestamp()) - 1)},
    ):
        refused = await client.get(f"{parts.path}?{urlencode(changed)}")
        assert refused.status_code == 404
    # Deleting the file kills its local links at once.
    await client.delete(f"/api/v1/files/{created['id']}", headers=desk)
    assert (await fetch(client, body["url"])).status_code == 404


async def test_roles_per_purpose_and_other_organisations(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
    desk: dict[str, str],
) -> None:
    created = (await upload(client, desk, pdf_bytes())).json()
    auditor = bearer_for(await create_user(session, organisation, roles=("auditor",)))
    response = await client.get(f"/api/v1/files/{created['id']}", headers=auditor)
    assert response.status_code == 403
    assert response.json()["code"] == "role_required"
    assert (await client.get("/api/v1/files", headers=auditor)).json()["items"] == []
    technician = bearer_for(await create_user(session, organisation, roles=("technician",)))
    assert (await client.get(f"/api/v1/files/{created['id']}", headers=technician)).is_success
    delete = await client.delete(f"/api/v1/files/{created['id']}", headers=technician)
    assert delete.status_code == 403
    stranger = bearer_for(await create_user(session, other_organisation, roles=("admin",)))
    for method, path in (
        ("GET", f"/api/v1/files/{created['id']}"),
        ("GET", f"/api/v1/files/{created['id']}/content"),
        ("GET", f"/api/v1/files/{created['id']}/versions"),
        ("GET", f"/api/v1/files/{created['id']}/presigned-url"),
        ("DELETE", f"/api/v1/files/{created['id']}"),
    ):
        response = await client.request(method, path, headers=stranger)
        assert response.status_code == 404, path
        assert response.json()["code"] == "file_not_found"
    assert (await client.get("/api/v1/files", headers=stranger)).json()["items"] == []
    assert (await client.get(f"/api/v1/files/{created['id']}", headers=desk)).is_success


async def test_soft_delete_retention_and_purge(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    object_store: ObjectStore,
    desk: dict[str, str],
    admin: dict[str, str],
) -> None:
    created = (await upload(client, desk, pdf_bytes())).json()
    kept = (await upload(client, desk, png_bytes())).json()
    deleted = await client.delete(
        f"/api/v1/files/{created['id']}", params={"reason": "Wrong patient"}, headers=desk
    )
    assert deleted.status_code == 200
    body = deleted.json()
    assert body["delete_reason"] == "Wrong patient"
    assert body["deleted_at"] is not None
    assert body["purge_after"] is not None
    again = await client.delete(f"/api/v1/files/{created['id']}", headers=desk)
    assert again.json()["deleted_at"] == body["deleted_at"]
    gone = await client.get(f"/api/v1/files/{created['id']}", headers=desk)
    assert (gone.status_code, gone.json()["code"]) == (410, "file_deleted")
    assert (
        await client.get(f"/api/v1/files/{created['id']}/content", headers=desk)
    ).status_code == 410
    row = await session.get(StoredFile, created["id"])
    assert row is not None
    assert await object_store.exists(row.storage_key)

    # Before retention has passed nothing is purged.
    dry = (await client.post("/api/v1/files/purge", json={"dry_run": True}, headers=admin)).json()
    assert dry["count"] == 0
    row.purge_after = utcnow() - timedelta(seconds=1)
    await session.flush()
    dry = (await client.post("/api/v1/files/purge", json={"dry_run": True}, headers=admin)).json()
    assert [i["file_id"] for i in dry["files"]] == [created["id"]]
    assert await object_store.exists(row.storage_key)
    done = (await client.post("/api/v1/files/purge", json={"dry_run": False}, headers=admin)).json()
    assert done["count"] == 1
    assert not await object_store.exists(row.storage_key)
    await session.refresh(row)
    assert row.purged_at is not None
    kept_row = await session.get(StoredFile, kept["id"])
    assert kept_row is not None
    assert await object_store.exists(kept_row.storage_key)
    actions = list(
        await session.scalars(
            select(AuditLog.action)
            .where(AuditLog.entity_id == created["id"])
            .order_by(AuditLog.occurred_at)
        )
    )
    assert actions == ["file.stored", "file.deleted", "file.purged"]
    # A second purge finds nothing more.
    assert (
        await files_service.purge(session, dry_run=False, organisation_id=organisation.id)
    ) == []


async def test_legal_hold_keeps_a_deleted_file(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    object_store: ObjectStore,
    desk: dict[str, str],
    admin: dict[str, str],
) -> None:
    created = (await upload(client, desk, pdf_bytes())).json()
    hold = await client.put(
        f"/api/v1/files/{created['id']}/legal-hold", json={"legal_hold": True}, headers=admin
    )
    assert hold.json()["legal_hold"] is True
    await client.delete(f"/api/v1/files/{created['id']}", headers=admin)
    row = await session.get(StoredFile, created["id"])
    assert row is not None
    row.purge_after = utcnow() - timedelta(days=1)
    await session.flush()
    assert await files_service.purge(session, dry_run=False, organisation_id=organisation.id) == []
    assert await object_store.exists(row.storage_key)
