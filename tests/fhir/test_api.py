"""The read-only FHIR API: resources validate, searches, bearer auth, tenant isolation."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.fhir.mappers import validated
from nidaan.fhir.profiles import profile_problems
from nidaan.tenancy.models import Organisation
from tests.fhir.support import reported_order
from tests.fixtures.objects import bearer_for, create_user

FHIR = "application/fhir+json"


async def test_patient_report_and_observations_read_back_as_valid_profiled_fhir(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    world = await reported_order(session, organisation)
    headers = world.lab.headers("front")

    patient = await client.get(f"/fhir/Patient/{world.patient.id}", headers=headers)
    assert patient.status_code == 200, patient.text
    assert patient.headers["content-type"].startswith(FHIR)
    body = patient.json()
    validated(body)
    assert profile_problems(body) == []
    assert {"system": "https://healthid.ndhm.gov.in", "value": "91-1234-5678-9012"} in [
        {k: i[k] for k in ("system", "value")} for i in body["identifier"]
    ]
    assert body["name"] == [{"text": "Sunita Sharma"}]
    assert body["gender"] == "female"

    report = await client.get(f"/fhir/DiagnosticReport/{world.report.id}", headers=headers)
    assert report.status_code == 200, report.text
    dr = report.json()
    validated(dr)
    assert profile_problems(dr) == []
    assert dr["status"] == "final"
    assert dr["subject"]["reference"] == f"Patient/{world.patient.id}"
    assert sorted(r["reference"] for r in dr["result"]) == sorted(
        f"Observation/{r.id}" for r in world.results.values()
    )
    assert dr["code"]["coding"][0]["system"] == "http://loinc.org"

    search = await client.get(
        "/fhir/DiagnosticReport", params={"patient": f"Patient/{world.patient.id}"}, headers=headers
    )
    assert search.status_code == 200
    bundle = search.json()
    validated(bundle)
    assert bundle["type"] == "searchset"
    assert [e["resource"]["id"] for e in bundle["entry"]] == [str(world.report.id)]

    hb = await client.get(
        "/fhir/Observation",
        params={"patient": str(world.patient.id), "code": "http://loinc.org|718-7"},
        headers=headers,
    )
    assert hb.status_code == 200
    entries = hb.json()["entry"]
    assert len(entries) == 1
    observation = entries[0]["resource"]
    validated(observation)
    assert profile_problems(observation) == []
    assert observation["valueQuantity"] == {
        "value": 10.8,
        "unit": "g/dL",
        "system": "http://unitsofmeasure.org",
        "code": "g/dL",
    }
    assert observation["interpretation"][0]["coding"][0]["code"] == "L"
    assert observation["referenceRange"][0]["low"]["value"] == 12
    assert observation["referenceRange"][0]["high"]["value"] == 15

    both = await client.get(
        "/fhir/Observation", params={"patient": str(world.patient.id)}, headers=headers
    )
    assert both.json()["total"] == 2


async def test_capability_statement_is_public(client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    assert {r["type"] for r in body["rest"][0]["resource"]} == {
        "Patient",
        "DiagnosticReport",
        "Observation",
    }


async def test_errors_are_operation_outcomes_and_tenants_are_isolated(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
) -> None:
    world = await reported_order(session, organisation)
    outsider = bearer_for(await create_user(session, other_organisation, roles=("admin",)))

    no_token = await client.get(f"/fhir/Patient/{world.patient.id}")
    assert no_token.status_code == 401
    assert no_token.json()["resourceType"] == "OperationOutcome"
    assert no_token.json()["issue"][0]["code"] == "login"

    for path in (
        f"/fhir/Patient/{world.patient.id}",
        f"/fhir/DiagnosticReport/{world.report.id}",
        "/fhir/Patient/not-a-uuid",
    ):
        response = await client.get(path, headers=outsider)
        assert response.status_code == 404, path
        assert response.json()["issue"][0]["code"] == "not-found"
    search = await client.get(
        "/fhir/Observation", params={"patient": str(world.patient.id)}, headers=outsider
    )
    assert search.status_code == 404

    billing = bearer_for(await create_user(session, organisation, roles=("billing",)))
    forbidden = await client.get(f"/fhir/Patient/{world.patient.id}", headers=billing)
    assert forbidden.status_code == 403
    assert forbidden.json()["issue"][0]["code"] == "forbidden"

    missing = await client.get("/fhir/Observation", headers=world.lab.headers("front"))
    assert missing.status_code == 400
    assert missing.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("role", ["technician", "pathologist", "auditor", "admin", "front_desk"])
async def test_clinical_roles_read(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation, role: str
) -> None:
    world = await reported_order(session, organisation)
    reader = bearer_for(await create_user(session, organisation, roles=(role,)))
    response = await client.get(f"/fhir/DiagnosticReport/{world.report.id}", headers=reader)
    assert response.status_code == 200


async def test_superseded_report_version_is_not_served(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    world = await reported_order(session, organisation)
    world.report.is_current = False
    await session.flush()
    response = await client.get(
        f"/fhir/DiagnosticReport/{world.report.id}", headers=world.lab.headers("front")
    )
    assert response.status_code == 404
    assert "replaced by a newer version" in response.json()["issue"][0]["diagnostics"]
