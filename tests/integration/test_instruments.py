"""Instruments as data: registration with a test map, validation, versions, tenancy, status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.integration.domain import InstrumentMessage, InstrumentResult
from nidaan.integration.service import integration_service
from nidaan.kit.ids import new_id
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test
from tests.fixtures.results import Lab, make_lab, principal_of


@pytest.fixture
async def lab(session: AsyncSession, organisation: Organisation) -> Lab:
    return await make_lab(session, organisation)


def _body(lab: Lab, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "cobas c311",
        "driver": "roche-cobas",
        "transport": "tcp-server",
        "port": 5000,
        "branch_id": str(lab.branch.id),
        "settings": {"timeout_s": 15},
        "test_map": [],
    }
    body.update(overrides)
    return body


async def test_register_with_map_by_code_and_loinc(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    glu = await create_catalog_test(session, lab.organisation, code="GLU", loinc="2345-7")
    crea = await create_catalog_test(session, lab.organisation, code="CREA", loinc="2160-0")
    body = _body(
        lab,
        test_map=[
            {"instrument_code": "687", "test_code": "glu"},
            {"instrument_code": "crea2", "loinc": "2160-0"},
        ],
    )
    response = await client.post("/api/v1/instruments", json=body, headers=lab.headers("admin"))
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["driver"] == "roche-cobas"
    assert data["version"] == 1
    assert {m["instrument_code"]: m["test_id"] for m in data["test_map"]} == {
        "687": str(glu.id),
        "CREA2": str(crea.id),
    }
    audit = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == data["id"], AuditLog.action == "instrument.created"
        )
    )
    assert audit is not None
    assert audit.changes["after"]["test_map"] == {"687": "GLU", "CREA2": "CREA"}

    got = await client.get(f"/api/v1/instruments/{data['id']}", headers=lab.headers("tech"))
    assert got.status_code == 200
    assert len(got.json()["test_map"]) == 2
    listed = await client.get("/api/v1/instruments", headers=lab.headers("path"))
    assert [i["id"] for i in listed.json()["items"]] == [data["id"]]


async def test_client_id_replay(client: httpx.AsyncClient, lab: Lab) -> None:
    body = _body(lab, id=str(new_id()))
    first = await client.post("/api/v1/instruments", json=body, headers=lab.headers("admin"))
    again = await client.post("/api/v1/instruments", json=body, headers=lab.headers("admin"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = await client.post(
        "/api/v1/instruments", json={**body, "port": 6000}, headers=lab.headers("admin")
    )
    assert other.status_code == 409
    assert other.json()["code"] == "id_conflict"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"transport": "serial", "port": None}, "invalid_transport"),
        ({"transport": "tcp-client", "port": 5000}, "invalid_transport"),
        ({"transport": "serial", "port": None, "device": "/dev/ttyS0"}, "invalid_transport"),
        ({"test_map": [{"instrument_code": "1", "test_code": "NOPE"}]}, "unknown_tests"),
        ({"test_map": [{"instrument_code": "1", "loinc": "9999-9"}]}, "unknown_tests"),
        ({"test_map": [{"instrument_code": "1"}]}, "validation_error"),
        ({"driver": "siemens-magic"}, "validation_error"),
        # A hospital sends orders to the lab; the lab never pushes orders to it.
        ({"driver": "hospital-hl7", "settings": {"order_download": True}}, "invalid_transport"),
    ],
)
async def test_invalid_instruments_are_refused(
    client: httpx.AsyncClient, lab: Lab, overrides: dict[str, Any], code: str
) -> None:
    response = await client.post(
        "/api/v1/instruments", json=_body(lab, **overrides), headers=lab.headers("admin")
    )
    assert response.status_code == 422, response.text
    if code != "validation_error":
        assert response.json()["code"] == code


async def test_serial_instrument_and_unique_name(client: httpx.AsyncClient, lab: Lab) -> None:
    serial = _body(
        lab,
        name="ARCHITECT i1000",
        driver="abbott-architect",
        transport="serial",
        port=None,
        device="/dev/ttyUSB0",
        baudrate=9600,
    )
    created = await client.post("/api/v1/instruments", json=serial, headers=lab.headers("admin"))
    assert created.status_code == 201, created.text
    again = await client.post("/api/v1/instruments", json=serial, headers=lab.headers("admin"))
    assert again.status_code == 409
    assert again.json()["code"] == "instrument_name_taken"


async def test_update_checks_version_and_replaces_map(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await create_catalog_test(session, lab.organisation, code="HB")
    created = (
        await client.post("/api/v1/instruments", json=_body(lab), headers=lab.headers("admin"))
    ).json()
    url = f"/api/v1/instruments/{created['id']}"
    changed = await client.patch(
        url,
        json={
            "version": 1,
            "enabled": False,
            "test_map": [{"instrument_code": "HGB", "test_code": "HB"}],
        },
        headers=lab.headers("admin"),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["enabled"] is False
    assert changed.json()["version"] == 2
    assert changed.json()["test_map"][0]["test_id"] == str(hb.id)
    stale = await client.patch(url, json={"version": 1, "name": "x"}, headers=lab.headers("admin"))
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    bad = await client.patch(
        url, json={"version": 2, "transport": "serial"}, headers=lab.headers("admin")
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_transport"
    audit = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == created["id"], AuditLog.action == "instrument.updated"
        )
    )
    assert audit is not None
    assert audit.changes["before"]["enabled"] is True
    assert audit.changes["after"]["test_map"] == {"HGB": "HB"}


async def test_another_organisation_sees_nothing(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab, other_organisation: Organisation
) -> None:
    other = await make_lab(session, other_organisation)
    created = (
        await client.post("/api/v1/instruments", json=_body(lab), headers=lab.headers("admin"))
    ).json()
    for path in ("", "/status", "/messages"):
        response = await client.get(
            f"/api/v1/instruments/{created['id']}{path}", headers=other.headers("admin")
        )
        assert response.status_code == 404, path
    patched = await client.patch(
        f"/api/v1/instruments/{created['id']}",
        json={"version": 1, "name": "mine"},
        headers=other.headers("admin"),
    )
    assert patched.status_code == 404
    listed = await client.get("/api/v1/instruments", headers=other.headers("admin"))
    assert listed.json()["items"] == []
    # Another lab's branch cannot host our instrument.
    foreign = await client.post(
        "/api/v1/instruments",
        json=_body(lab, branch_id=str(other.branch.id)),
        headers=lab.headers("admin"),
    )
    assert foreign.status_code == 422


async def test_status_idle_connected_error_disabled(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    created = (
        await client.post("/api/v1/instruments", json=_body(lab), headers=lab.headers("admin"))
    ).json()
    url = f"/api/v1/instruments/{created['id']}/status"
    status = (await client.get(url, headers=lab.headers("tech"))).json()
    assert status["state"] == "idle"
    assert status["messages_received"] == 0

    admin = principal_of(lab.users["admin"])
    instrument = await integration_service.get_instrument(session, admin, new_id_of(created))
    await integration_service.ingest_results(
        session,
        lab.organisation.id,
        instrument,
        InstrumentMessage("k1", "ORU^R01", [InstrumentResult("NOPE", "1", "5")], "MSH|..."),
    )
    status = (await client.get(url, headers=lab.headers("tech"))).json()
    assert status["state"] == "connected"
    assert (status["messages_received"], status["open_exceptions"]) == (1, 1)

    await integration_service.store_unparsable(
        session, lab.organisation.id, instrument.id, "hl7", "garbage", "no MSH segment"
    )
    status = (await client.get(url, headers=lab.headers("tech"))).json()
    assert status["state"] == "error"
    assert status["last_error"] == "no MSH segment"
    assert status["messages_failed"] == 1

    integration_service.report_link(instrument.id, False)
    await client.patch(
        f"/api/v1/instruments/{created['id']}",
        json={"version": 1, "enabled": False},
        headers=lab.headers("admin"),
    )
    status = (await client.get(url, headers=lab.headers("tech"))).json()
    assert status["state"] == "disabled"


def new_id_of(data: dict[str, Any]):  # type: ignore[no-untyped-def]
    import uuid

    return uuid.UUID(data["id"])
