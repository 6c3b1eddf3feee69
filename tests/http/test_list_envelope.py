"""Every list the API returns is one shape: ``{items, pagination}`` with ``page``/``limit``."""

from __future__ import annotations

from typing import Any

import httpx


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _json_success_schemas(document: dict[str, Any]):  # type: ignore[no-untyped-def]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                media = response.get("content", {}).get("application/json", {})
                if "schema" in media:
                    yield f"{method.upper()} {path}", operation, media["schema"]


def _is_collection(name: str) -> bool:
    """A read of a collection: a GET whose path does not end at one resource's id. (An action
    may report what it did, as a purge lists its files; a rate list holds its items.)"""
    method, path = name.split(" ", 1)
    return method == "GET" and not path.rstrip("/").rsplit("/", 1)[-1].startswith("{")


async def test_every_list_response_in_the_openapi_document_uses_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    components = document["components"]["schemas"]
    pagination = _resolve({"$ref": "#/components/schemas/Pagination"}, components)
    assert set(pagination["properties"]) == {"total_count", "page", "limit", "max_page"}
    bare_arrays, envelopes = [], []
    for name, operation, schema in _json_success_schemas(document):
        resolved = _resolve(schema, components)
        if resolved.get("type") == "array":
            bare_arrays.append(name)
            continue
        properties = resolved.get("properties", {})
        items = _resolve(properties.get("items", {}), components)
        if items.get("type") != "array" or not _is_collection(name):
            continue
        envelopes.append(name)
        assert set(properties) == {"items", "pagination"}, name
        assert properties["pagination"] == {"$ref": "#/components/schemas/Pagination"}, name
        query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert {"page", "limit"} <= query, name
    assert bare_arrays == []
    assert "GET /api/v1/results" in envelopes
    assert len(envelopes) >= 20
