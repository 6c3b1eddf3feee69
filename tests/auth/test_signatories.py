"""Authorised signatories: medical council registration and a signature image for reports."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.config import get_settings
from nidaan.kit.storage import get_object_store
from nidaan.reports.sample import signature_png
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user


def picture(fmt: str, size: tuple[int, int] = (300, 100)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (255, 255, 255)).save(buffer, format=fmt)
    return buffer.getvalue()


async def test_registration_number_is_set_and_returned(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    pathologist = await create_user(session, organisation, roles=("pathologist",))
    changed = await client.patch(
        f"/api/v1/users/{pathologist.id}",
        json={"registration_number": "KMC 45812"},
        headers=bearer_for(admin),
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["registration_number"], changed.json()["has_signature"]) == (
        "KMC 45812",
        False,
    )
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(pathologist.id), AuditLog.action == "user.updated"
        )
    )
    assert entry is not None
    assert entry.changes["after"]["registration_number"] == "KMC 45812"


async def test_a_signature_image_is_stored_and_audited(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    pathologist = await create_user(session, organisation, roles=("pathologist",))
    image = signature_png("Dr. Test")
    response = await client.put(
        f"/api/v1/users/{pathologist.id}/signature",
        content=image,
        headers={**bearer_for(admin), "Content-Type": "image/png"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["has_signature"] is True
    await session.refresh(pathologist)
    assert pathologist.signature_key is not None
    assert pathologist.signature_key.endswith(".png")
    assert await get_object_store(get_settings()).get(pathologist.signature_key) == image
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(pathologist.id), AuditLog.action == "user.signature_set"
        )
    )
    assert entry is not None

    jpeg = await client.put(
        f"/api/v1/users/{pathologist.id}/signature",
        content=picture("JPEG"),
        headers={**bearer_for(admin), "Content-Type": "image/jpeg"},
    )
    assert jpeg.status_code == 200, jpeg.text
    await session.refresh(pathologist)
    assert pathologist.signature_key.endswith(".jpg")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"not an image at all", "image/png"),
        (picture("JPEG"), "image/png"),  # says PNG, is JPEG
        (picture("PNG"), "application/octet-stream"),  # (text/plain: the NUL guard refuses)
        (picture("PNG", (3000, 200)), "image/png"),  # a page scan, not a signature
        (b"\x89PNG\r\n\x1a\n" + b"0" * (600 * 1024), "image/png"),  # too big
        (b"", "image/png"),
    ],
    ids=["garbage", "wrong-type", "not-an-image-type", "too-wide", "too-big", "empty"],
)
async def test_a_bad_signature_upload_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    content: bytes,
    content_type: str,
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    pathologist = await create_user(session, organisation, roles=("pathologist",))
    response = await client.put(
        f"/api/v1/users/{pathologist.id}/signature",
        content=content,
        headers={**bearer_for(admin), "Content-Type": content_type},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "signature_image_invalid"
    await session.refresh(pathologist)
    assert pathologist.signature_key is None


async def test_another_organisations_user_is_not_found(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    stranger = await create_user(session, other_organisation, roles=("pathologist",))
    response = await client.put(
        f"/api/v1/users/{stranger.id}/signature",
        content=picture("PNG"),
        headers={**bearer_for(admin), "Content-Type": "image/png"},
    )
    assert response.status_code == 404
