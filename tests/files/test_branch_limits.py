"""A file of an order is at the order's branch: a user limited to another branch is refused
it (403 branch_not_allowed) on every files operation and does not see it in lists; files of
no order (e.g. a walk-in's prescription) stay the organisation's."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.errors import OutsideYourBranches
from nidaan.files.enums import FilePurpose
from nidaan.files.service import UploadMetadata, files_service
from nidaan.files.upload import bytes_stream
from nidaan.tenancy.models import Organisation
from tests.files.conftest import pdf_bytes
from tests.fixtures.objects import bearer_for, create_branch, create_user
from tests.fixtures.orders import create_lab_world, create_order
from tests.fixtures.results import principal_of


async def test_files_of_another_branchs_order_are_refused_everywhere(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    world = await create_lab_world(session, organisation)
    order, _, _ = await create_order(
        session, organisation, world.patient, [world.tests["HB"]], branch=world.lab
    )
    desk = await create_user(session, organisation, roles=("admin", "front_desk"))
    linked = await files_service.upload(
        session,
        principal_of(desk),
        UploadMetadata(purpose=FilePurpose.PRESCRIPTION, filename="rx.pdf", order_id=order.id),
        bytes_stream(pdf_bytes()),
    )
    loose = await files_service.upload(
        session,
        principal_of(desk),
        UploadMetadata(purpose=FilePurpose.PRESCRIPTION, filename="walk-in.pdf"),
        bytes_stream(pdf_bytes()),
    )
    elsewhere = await create_branch(session, organisation, code="CC9")
    limited = await create_user(
        session, organisation, roles=("admin", "front_desk"), branches=[elsewhere]
    )
    headers = bearer_for(limited)
    listed = await client.get("/api/v1/files", headers=headers)
    ids = {item["id"] for item in listed.json()["items"]}
    assert str(linked.id) not in ids
    assert str(loose.id) in ids
    for method, tail, body in [
        ("GET", "", None),
        ("GET", "/versions", None),
        ("GET", "/content", None),
        ("GET", "/presigned-url", None),
        ("PUT", "/legal-hold", {"legal_hold": True}),
        ("DELETE", "", None),
    ]:
        response = await client.request(
            method, f"/api/v1/files/{linked.id}{tail}", json=body, headers=headers
        )
        assert response.status_code == 403, (method, tail, response.text)
        assert response.json()["code"] == "branch_not_allowed"
        assert (
            await client.request(
                method, f"/api/v1/files/{loose.id}{tail}", json=body, headers=headers
            )
        ).status_code < 400
    with pytest.raises(OutsideYourBranches):
        await files_service.upload(
            session,
            dataclasses.replace(principal_of(limited), branch_ids=frozenset({elsewhere.id})),
            UploadMetadata(purpose=FilePurpose.PRESCRIPTION, filename="x.pdf", order_id=order.id),
            bytes_stream(pdf_bytes()),
        )
    # The same user without a branch limit reaches it.
    unlimited = await create_user(session, organisation, roles=("admin", "front_desk"))
    seen = await client.get(f"/api/v1/files/{linked.id}", headers=bearer_for(unlimited))
    assert seen.status_code == 200
