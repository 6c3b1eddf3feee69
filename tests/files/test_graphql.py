"""The file operations over GraphQL follow the REST rules (same service underneath)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.tenancy.models import Organisation
from tests.files.conftest import pdf_bytes
from tests.files.test_stores import fetch
from tests.fixtures.objects import bearer_for, create_user

pytestmark = pytest.mark.usefixtures("object_store")

UPLOAD = """
mutation Upload($file: Upload!, $metadata: FileMetadataInput!) {
  uploadFile(file: $file, metadata: $metadata) {
    id documentId version filename contentType sizeBytes sha256 purpose contentPath
  }
}"""


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    metadata: dict[str, Any],
    name: str = "rx.pdf",
) -> dict[str, Any]:
    operations = {"query": UPLOAD, "variables": {"file": None, "metadata": metadata}}
    response = await client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": (name, data, "application/pdf")},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def gql(
    client: httpx.AsyncClient, headers: dict[str, str], query: str, **variables: Any
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def error_code(body: dict[str, Any]) -> str:
    return body["errors"][0]["extensions"]["code"]


async def test_upload_get_link_delete(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    desk = bearer_for(await create_user(session, organisation, roles=("front_desk",)))
    data = pdf_bytes()
    body = await upload(client, desk, data, {"purpose": "prescription", "description": "Rx"})
    assert "errors" not in body, body
    created = body["data"]["uploadFile"]
    assert (created["contentType"], created["sizeBytes"], created["version"]) == (
        "application/pdf",
        len(data),
        1,
    )
    again = await upload(
        client, desk, pdf_bytes(2), {"purpose": "prescription", "documentId": created["documentId"]}
    )
    assert again["data"]["uploadFile"]["version"] == 2

    fetched = await gql(
        client, desk, "query($id: ID!) { getFile(fileId: $id) { id sha256 } }", id=created["id"]
    )
    assert fetched["data"]["getFile"] == {"id": created["id"], "sha256": created["sha256"]}
    link = await gql(
        client,
        desk,
        "query($id: ID!) { getPresignedUrl(fileId: $id, expirySeconds: 60) { url expiresAt } }",
        id=created["id"],
    )
    downloaded = await fetch(client, link["data"]["getPresignedUrl"]["url"])
    assert downloaded.content == data
    too_long = await gql(
        client,
        desk,
        "query($id: ID!) { getPresignedUrl(fileId: $id, expirySeconds: 700000) { url } }",
        id=created["id"],
    )
    assert error_code(too_long) == "invalid_input"

    deleted = await gql(
        client,
        desk,
        "mutation($id: ID!) { deleteFile(fileId: $id) { id deletedAt purgeAfter } }",
        id=created["id"],
    )
    assert deleted["data"]["deleteFile"]["deletedAt"] is not None
    gone = await gql(
        client, desk, "query($id: ID!) { getFile(fileId: $id) { id } }", id=created["id"]
    )
    assert error_code(gone) == "file_deleted"


async def test_same_validation_and_access_rules_as_rest(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
) -> None:
    desk = bearer_for(await create_user(session, organisation, roles=("front_desk",)))
    html = await upload(
        client, desk, b"<html><body>not a pdf</body></html>", {"purpose": "prescription"}
    )
    assert error_code(html) == "file_type_not_allowed"
    report = await upload(client, desk, pdf_bytes(), {"purpose": "report"})
    assert error_code(report) == "purpose_not_uploadable"
    created = (await upload(client, desk, pdf_bytes(), {"purpose": "prescription"}))["data"][
        "uploadFile"
    ]
    auditor = bearer_for(await create_user(session, organisation, roles=("auditor",)))
    denied = await gql(
        client, auditor, "query($id: ID!) { getFile(fileId: $id) { id } }", id=created["id"]
    )
    assert error_code(denied) == "role_required"
    stranger = bearer_for(await create_user(session, other_organisation, roles=("admin",)))
    for query in (
        "query($id: ID!) { getFile(fileId: $id) { id } }",
        "query($id: ID!) { getPresignedUrl(fileId: $id) { url } }",
        "mutation($id: ID!) { deleteFile(fileId: $id) { id } }",
    ):
        assert error_code(await gql(client, stranger, query, id=created["id"])) == (
            "file_not_found"
        )
    unauthenticated = await client.post(
        "/graphql", json={"query": 'query { getFile(fileId: "x") { id } }'}
    )
    assert unauthenticated.status_code == 401
