"""Findings 7 (NUL bytes), 8 (request body limits) and 12 (control characters in text).

NUL characters anywhere in a request are refused with 422 (PostgreSQL cannot store them; they
used to surface as 500). Bodies over the route class's limit get 413 with a problem document
without being parsed. Every free-text field of every request body refuses control
characters at the schema level (422 naming the field); multi-line fields allow line breaks.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import get_settings
from nidaan.request_guard import holds_nul
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user
from tests.security.openapi_walk import (
    ALL_ROLES,
    json_body_schema,
    operations,
    string_fields,
)

TEN_MB = 10 * 1024 * 1024

# ---- 8: body limits -----------------------------------------------------------------


async def test_ten_megabyte_json_body_is_refused_with_413_before_parsing(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"full_name": "' + b"a" * TEN_MB + b'"}'
    response = await client.post(
        "/api/v1/patients", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "payload_too_large"
    assert problem["route_class"] == "json"
    assert problem["limit_bytes"] == 1024 * 1024


async def test_ten_megabyte_graphql_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(TEN_MB // 16)) + " }"
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 413
    assert response.json()["route_class"] == "graphql"


async def test_streamed_body_without_length_is_cut_off_at_the_limit(
    client: httpx.AsyncClient,
) -> None:
    sent = 0

    async def chunks():  # type: ignore[no-untyped-def]
        nonlocal sent
        for _ in range(200):
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    response = await client.post(
        "/api/v1/auth/refresh", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert sent < 200 * 64 * 1024, "the server kept reading after the limit"


async def test_upload_class_has_its_own_larger_limit(client: httpx.AsyncClient) -> None:

    upload_limit = get_settings().max_upload_body_bytes
    two_mb = b"%PDF-1.7\n" + b"0" * (2 * 1024 * 1024)
    # Past the JSON limit but under the upload limit: not refused as too large.
    response = await client.post(
        "/api/v1/patients", content=two_mb, headers={"content-type": "application/pdf"}
    )
    assert response.status_code != 413
    huge = await client.post(
        "/api/v1/patients",
        content=b"0" * (upload_limit + 1),
        headers={"content-type": "application/pdf"},
    )
    assert huge.status_code == 413
    assert huge.json()["route_class"] == "upload"


async def test_bodies_under_the_limit_work_as_before(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    user = await create_user(session, organisation)
    response = await client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": "correct-horse-battery"}
    )
    assert response.status_code == 200


# ---- 7: NUL characters --------------------------------------------------------------


@pytest.mark.parametrize("username", ["admin\x00@example.com", "\x00", "a@example.com\x00' OR 1=1"])
async def test_nul_in_the_unauthenticated_login_form_is_422_not_500(
    client: httpx.AsyncClient, username: str
) -> None:
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": "x\x00y"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "nul_character"


async def test_nul_in_json_query_and_path_is_422(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    headers = bearer_for(await create_user(session, organisation))
    in_json = await client.post(
        "/api/v1/patients", json={"full_name": "Asha\x00Verma"}, headers=headers
    )
    in_query = await client.get("/api/v1/patients?q=as%00ha", headers=headers)
    in_path = await client.get("/api/v1/samples/AB%00C", headers=headers)
    in_graphql = await client.post(
        "/graphql",
        json={
            "query": "query($c: ID){ getSyncStatus(clientId: $c) { lag } }",
            "variables": {"c": "\x00"},
        },
        headers=headers,
    )
    for response in (in_json, in_query, in_path, in_graphql):
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "nul_character"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_holds_nul_is_exact_on_any_json_document(value: Any) -> None:
    encoded = json.dumps(value).encode()
    expected = "\x00" in json.dumps(value, ensure_ascii=False).replace("\\u0000", "\x00")
    has_nul = any("\x00" in s for s in _strings(value))
    assert holds_nul(encoded, "application/json") is has_nul
    assert expected is has_nul or not has_nul


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    return []


# ---- 12: control characters in every free-text field --------------------------------

CONTROL_SAMPLES = ["Asha\x07Verma", "Asha\x1b[31mVerma", "Asha\u202eamreV", "Asha\x7fVerma"]


def _request_fields(app: FastAPI) -> list[tuple[str, str, tuple[str | int, ...], bool]]:
    document = app.openapi()
    found = []
    for operation in operations(document):
        schema = json_body_schema(document, operation)
        if schema is None:
            continue
        for field in string_fields(document, schema):
            found.append(
                (operation.method, operation.path, field.location, field.multiline_allowed)
            )
    return found


async def test_every_free_text_field_of_every_request_body_refuses_control_characters(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    from tests.security.openapi_walk import StringField

    headers = bearer_for(await create_user(session, organisation, roles=ALL_ROLES))
    fields = _request_fields(app)
    assert len(fields) > 60, "the walk should find the request bodies' text fields"
    accepted = []
    for method, path, location, multiline in fields:
        field = StringField(location, multiline)
        url = "/" + "/".join(
            "00000000-0000-7000-8000-000000000000"
            if part.startswith("{") and part.endswith("_id}")
            else "ACC1"
            if part.startswith("{")
            else part
            for part in path.strip("/").split("/")
        )
        samples = CONTROL_SAMPLES if not multiline else ["line\x1bone", "back\x08space"]
        for sample in samples:
            response = await client.request(
                method, url, json=field.body_with(sample), headers=headers
            )
            where = ".".join(str(p) for p in location)
            errors = response.json().get("errors", []) if response.status_code == 422 else []
            refused = any(
                (e["field"] == where or where.startswith(e["field"] + "."))
                and "control character" in e["message"]
                for e in errors
            )
            if not refused:
                accepted.append((method, path, where, repr(sample), response.status_code))
    assert accepted == [], "fields that accepted control characters:\n" + "\n".join(
        map(str, accepted)
    )


async def test_multiline_fields_keep_line_breaks_and_tabs(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    headers = bearer_for(await create_user(session, organisation, roles=ALL_ROLES))
    created = await client.post(
        "/api/v1/patients",
        json={
            "full_name": "Asha Verma",
            "sex": "female",
            "age_years": 30,
            "address": "12, MG Road\nIndiranagar\tBengaluru",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    named = await client.post(
        "/api/v1/patients",
        json={"full_name": "Asha\nVerma", "sex": "female", "age_years": 30},
        headers=headers,
    )
    assert named.status_code == 422
    assert named.json()["errors"][0]["field"] == "full_name"


@pytest.mark.parametrize(
    ("content_type", "refused"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("application/x-www-form-urlencoded", True),
        ("", True),
        ("text/plain", False),
        ("image/png", False),
    ],
)
def test_only_bodies_parsed_as_text_are_refused_for_a_raw_nul(
    content_type: str, refused: bool
) -> None:
    # A binary body (an image sent with the wrong type) reaches its endpoint, which checks it.
    assert holds_nul(b'{"a": "b\x00"}', content_type) is refused
