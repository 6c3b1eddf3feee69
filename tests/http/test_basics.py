"""Probes, OpenAPI, problem details, request ids."""

from __future__ import annotations

import httpx


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    from nidaan.migrate import head_revision

    assert ready.json() == {"status": "ok", "database": "ok", "migration": head_revision()}


async def test_openapi_puts_product_endpoints_under_api_v1(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = set(spec["paths"])
    # The FHIR API (/fhir) and the ABDM gateway's callbacks (/api/v3, paths ABDM prescribes)
    # have their own prefixes.
    outside = ("/api/v1/", "/fhir/", "/api/v3/")
    assert {p for p in paths if not p.startswith(outside)} == {
        "/healthz",
        "/readyz",
        "/verify/{code}",  # the public report verification page (QR code on every report)
        "/graphql",  # the offline sync protocol (docs/sync.md); bearer auth inside
        "/graphql/schema.graphql",  # its SDL, public
        "/webhooks/whatsapp",  # provider webhook: hub challenge (GET), signed statuses (POST)
        "/webhooks/razorpay",  # payment gateways' signed webhooks (docs/billing.md)
        "/webhooks/stripe",
        "/webhooks/payu",
        "/my-privacy/{token}",  # the patient's own privacy page (DPDP; a link, no login)
        "/my-privacy/{token}/consents/{purpose}",
        "/my-privacy/{token}/requests",
    }
    operation_ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert (await client.get("/docs")).status_code == 200


async def test_unknown_route_and_malformed_body_are_problem_documents(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "not_found"

    malformed = await client.post("/api/v1/auth/refresh", json={"refresh_token": 5})
    assert malformed.status_code == 422
    body = malformed.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["field"] == "refresh_token"


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz", headers={"X-Request-ID": "abc-123"})).headers[
        "x-request-id"
    ] == "abc-123"
    generated = (await client.get("/healthz")).headers["x-request-id"]
    assert len(generated) == 32
