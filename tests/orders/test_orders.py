"""Orders through the API: grouping into tubes, accessions, idempotency, branch limits,
tenancy, adding and cancelling tests, completion, rejection with recollection, labels."""

from __future__ import annotations

import io
import re
import uuid

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.events.models import OutboxEvent
from nidaan.kit.time import utcnow
from nidaan.orders.enums import OrderTestStatus
from nidaan.orders.models import Order, OrderTest
from nidaan.orders.service import orders_service
from nidaan.samples.domain import ist_day
from nidaan.samples.models import Sample
from nidaan.samples.service import samples_service
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import bearer_for, create_user
from tests.fixtures.orders import (
    LabWorld,
    create_lab_world,
    create_order,
    receive_samples,
    system_principal,
)

LABEL_SIZE = (141.73, 70.87)  # 50 x 25 mm in points


@pytest.fixture
async def world(session: AsyncSession, organisation: Organisation) -> LabWorld:
    return await create_lab_world(session, organisation)


@pytest.fixture
async def admin_headers(session: AsyncSession, organisation: Organisation) -> dict[str, str]:
    return bearer_for(await create_user(session, organisation, roles=("admin",)))


def today() -> str:
    return f"{ist_day(utcnow()):%Y%m%d}"


def order_body(world: LabWorld, *items: str, branch=None, **extra) -> dict:  # type: ignore[no-untyped-def]
    return {
        "patient_id": str(world.patient.id),
        "branch_id": str((branch or world.lab).id),
        "items": list(items),
        **extra,
    }


async def count(session: AsyncSession, model, organisation: Organisation) -> int:  # type: ignore[no-untyped-def]
    return int(
        await session.scalar(
            select(func.count()).select_from(model).where(model.organisation_id == organisation.id)
        )
        or 0
    )


async def test_create_groups_tests_into_one_tube_per_specimen_and_container(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    response = await client.post(
        "/api/v1/orders",
        json=order_body(world, "CBC", "GLU", "LFT", "KFT", priority="urgent"),
        headers=admin_headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    day = today()
    assert re.fullmatch(rf"ORD-{day}-\d{{4}}", body["order_number"])
    assert body["status"] == "open"
    assert body["priority"] == "urgent"
    assert body["referring_doctor"] == "Dr. R. Mehta"  # from the patient
    assert body["labels_url"] == f"/api/v1/orders/{body['id']}/labels"
    assert [
        (s["accession"], s["specimen_type"], s["container"], s["status"], s["tests"])
        for s in body["samples"]
    ] == [
        (f"LAB-{day}-0001", "whole_blood", "edta_purple", "ordered", ["HB", "WBC", "PLT"]),
        (f"LAB-{day}-0002", "plasma", "fluoride_grey", "ordered", ["GLU"]),
        (f"LAB-{day}-0003", "serum", "sst_yellow", "ordered", ["ALT", "AST", "CREA", "UREA"]),
    ]
    assert body["samples"][0]["label_url"] == f"/api/v1/samples/LAB-{day}-0001/label"
    by_code = {t["code"]: t for t in body["tests"]}
    assert list(by_code) == ["HB", "WBC", "PLT", "GLU", "ALT", "AST", "CREA", "UREA"]
    assert by_code["HB"]["panel_id"] == str(world.panels["CBC"].id)
    assert by_code["GLU"]["panel_id"] is None
    assert by_code["UREA"]["panel_id"] == str(world.panels["KFT"].id)
    assert by_code["CREA"]["accession"] == f"LAB-{day}-0003"
    assert {t["status"] for t in body["tests"]} == {"active"}
    assert body["tests"][0]["sample_id"] == body["samples"][0]["id"]

    entry = await session.scalar(
        select(AuditLog).where(AuditLog.entity_id == body["id"], AuditLog.action == "order.created")
    )
    assert entry is not None
    assert entry.changes["after"]["accessions"] == [s["accession"] for s in body["samples"]]
    assert entry.changes["after"]["tests"] == list(by_code)
    sample_entries = await session.scalar(
        select(func.count()).where(
            AuditLog.organisation_id == world.organisation.id, AuditLog.action == "sample.created"
        )
    )
    assert sample_entries == 3
    event = await session.scalar(
        select(OutboxEvent).where(
            OutboxEvent.organisation_id == world.organisation.id,
            OutboxEvent.name == "orders.order_created",
        )
    )
    assert event is not None
    assert event.payload == {
        "organisation_id": str(world.organisation.id),
        "order_id": body["id"],
        "patient_id": str(world.patient.id),
        "branch_id": str(world.lab.id),
    }
    fetched = await client.get(f"/api/v1/orders/{body['id']}", headers=admin_headers)
    assert fetched.json() == body


async def test_accessions_count_per_branch_and_day(
    client: httpx.AsyncClient, world: LabWorld, admin_headers
) -> None:
    day = today()
    first = await client.post(
        "/api/v1/orders", json=order_body(world, "GLU"), headers=admin_headers
    )
    second = await client.post(
        "/api/v1/orders", json=order_body(world, "GLU", "HB"), headers=admin_headers
    )
    at_centre = await client.post(
        "/api/v1/orders", json=order_body(world, "GLU", branch=world.centre), headers=admin_headers
    )

    assert [s["accession"] for s in first.json()["samples"]] == [f"LAB-{day}-0001"]
    assert [s["accession"] for s in second.json()["samples"]] == [
        f"LAB-{day}-0002",
        f"LAB-{day}-0003",
    ]
    assert [s["accession"] for s in at_centre.json()["samples"]] == [f"CC1-{day}-0001"]
    numbers = [r.json()["order_number"] for r in (first, second, at_centre)]
    assert [int(n.rsplit("-", 1)[1]) for n in numbers] == [1, 2, 3]


async def test_idempotency_key_replay_creates_one_order(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    headers = {**admin_headers, "Idempotency-Key": "order-key-1"}
    first = await client.post("/api/v1/orders", json=order_body(world, "CBC"), headers=headers)
    again = await client.post("/api/v1/orders", json=order_body(world, "CBC"), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await count(session, Order, world.organisation) == 1
    assert await count(session, Sample, world.organisation) == 1


async def test_client_id_replays_same_content_and_refuses_other_content(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    order_id = str(uuid.UUID(int=uuid.uuid4().int))
    body = order_body(world, "GLU", id=order_id)
    first = await client.post("/api/v1/orders", json=body, headers=admin_headers)
    again = await client.post("/api/v1/orders", json=body, headers=admin_headers)
    other = await client.post(
        "/api/v1/orders", json={**body, "items": ["HB"]}, headers=admin_headers
    )

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] == order_id
    assert again.json()["samples"] == first.json()["samples"]
    assert other.status_code == 409
    assert other.json()["code"] == "id_conflict"
    assert await count(session, Order, world.organisation) == 1


async def test_unknown_test_code_is_422_naming_it_and_creates_nothing(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    response = await client.post(
        "/api/v1/orders", json=order_body(world, "GLU", "NOPE"), headers=admin_headers
    )

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "unknown_orderables"
    assert problem["unknown"] == ["NOPE"]
    assert "NOPE" in problem["detail"]
    assert await count(session, Order, world.organisation) == 0
    assert await count(session, Sample, world.organisation) == 0


async def test_unknown_patient_or_branch_is_422(
    client: httpx.AsyncClient, world: LabWorld, admin_headers
) -> None:
    no_patient = await client.post(
        "/api/v1/orders",
        json={**order_body(world, "GLU"), "patient_id": str(uuid.uuid4())},
        headers=admin_headers,
    )
    no_branch = await client.post(
        "/api/v1/orders",
        json={**order_body(world, "GLU"), "branch_id": str(uuid.uuid4())},
        headers=admin_headers,
    )
    empty = await client.post("/api/v1/orders", json=order_body(world), headers=admin_headers)

    assert (no_patient.status_code, no_patient.json()["field"]) == (422, "patient_id")
    assert (no_branch.status_code, no_branch.json()["field"]) == (422, "branch_id")
    assert empty.status_code == 422


async def test_branch_limited_user_is_refused_at_another_branch(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld
) -> None:
    desk = await create_user(
        session, world.organisation, roles=("front_desk",), branches=[world.centre]
    )

    refused = await client.post(
        "/api/v1/orders", json=order_body(world, "GLU"), headers=bearer_for(desk)
    )
    allowed = await client.post(
        "/api/v1/orders",
        json=order_body(world, "GLU", branch=world.centre),
        headers=bearer_for(desk),
    )

    assert refused.status_code == 403
    assert refused.json()["code"] == "branch_not_allowed"
    assert allowed.status_code == 201
    assert allowed.json()["created_by_id"] == str(desk.id)
    assert await count(session, Order, world.organisation) == 1


async def test_other_organisations_orders_are_invisible(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: LabWorld,
    other_organisation: Organisation,
    admin_headers,
) -> None:
    theirs = await create_lab_world(session, other_organisation)
    their_order, their_samples, their_tests = await create_order(
        session, other_organisation, theirs.patient, [theirs.tests["GLU"]], branch=theirs.centre
    )  # CC1-...-0001: no sample of ours has that accession
    ours = await client.post("/api/v1/orders", json=order_body(world, "GLU"), headers=admin_headers)
    assert ours.status_code == 201

    for method, path, body in (
        ("GET", f"/api/v1/orders/{their_order.id}", None),
        ("GET", f"/api/v1/orders/{their_order.id}/labels", None),
        ("POST", f"/api/v1/orders/{their_order.id}/tests", {"items": ["HB"]}),
        (
            "POST",
            f"/api/v1/orders/{their_order.id}/tests/{their_tests[0].id}/cancel",
            {"reason": "x"},
        ),
        ("GET", f"/api/v1/samples/{their_samples[0].accession}/label", None),
        ("POST", f"/api/v1/samples/{their_samples[0].accession}/reject", {"reason": "clotted"}),
    ):
        response = await client.request(method, path, json=body, headers=admin_headers)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "not_found"

    listed = (await client.get("/api/v1/orders", headers=admin_headers)).json()
    assert [o["id"] for o in listed["items"]] == [ours.json()["id"]]
    their_patient = await client.post(
        "/api/v1/orders",
        json={**order_body(world, "GLU"), "patient_id": str(theirs.patient.id)},
        headers=admin_headers,
    )
    assert their_patient.status_code == 422
    their_branch = await client.post(
        "/api/v1/orders",
        json={**order_body(world, "GLU"), "branch_id": str(theirs.lab.id)},
        headers=admin_headers,
    )
    assert their_branch.status_code == 422
    sample = await session.get(Sample, their_samples[0].id)
    assert sample is not None
    assert sample.status == "ordered"


async def test_list_filters(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    other_patient = await create_patient(session, world.organisation)
    first = (
        await client.post("/api/v1/orders", json=order_body(world, "GLU"), headers=admin_headers)
    ).json()
    second = (
        await client.post(
            "/api/v1/orders",
            json={
                **order_body(world, "HB", branch=world.centre),
                "patient_id": str(other_patient.id),
            },
            headers=admin_headers,
        )
    ).json()

    async def ids(**params) -> list[str]:  # type: ignore[no-untyped-def]
        response = await client.get("/api/v1/orders", params=params, headers=admin_headers)
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()["items"]]

    day = ist_day(utcnow()).isoformat()
    assert await ids() == [second["id"], first["id"]]
    assert await ids(patient_id=str(world.patient.id)) == [first["id"]]
    assert await ids(branch_id=str(world.centre.id)) == [second["id"]]
    assert await ids(status="open", date_from=day, date_to=day) == [second["id"], first["id"]]
    assert await ids(status="completed") == []
    assert await ids(date_from="2001-01-01", date_to="2001-01-02") == []


async def test_add_tests_join_an_unreceived_tube_or_get_a_new_one(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    day = today()
    order = (
        await client.post(
            "/api/v1/orders", json=order_body(world, "HB", "ALT"), headers=admin_headers
        )
    ).json()
    blood, serum = order["samples"]
    # The serum tube reaches the lab; the blood tube is only collected.
    caller = system_principal(world.organisation)
    await samples_service.collect(session, caller, blood["accession"])
    await receive_samples(
        session, world.organisation, [await session.get(Sample, serum["id"])], branch=world.lab
    )

    response = await client.post(
        f"/api/v1/orders/{order['id']}/tests",
        json={"items": ["CBC", "AST", "GLU", "HB"]},
        headers=admin_headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert [(s["accession"], s["status"], s["tests"]) for s in body["samples"]] == [
        (f"LAB-{day}-0001", "collected", ["HB", "WBC", "PLT"]),
        (f"LAB-{day}-0002", "received", ["ALT"]),
        (f"LAB-{day}-0003", "ordered", ["AST"]),
        (f"LAB-{day}-0004", "ordered", ["GLU"]),
    ]
    assert [t["code"] for t in body["tests"]] == ["HB", "ALT", "WBC", "PLT", "AST", "GLU"]
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == order["id"], AuditLog.action == "order.tests_added"
        )
    )
    assert entry is not None
    assert entry.changes["after"]["tests"] == ["WBC", "PLT", "AST", "GLU"]
    nothing_new = await client.post(
        f"/api/v1/orders/{order['id']}/tests", json={"items": ["HB"]}, headers=admin_headers
    )
    assert nothing_new.status_code == 200
    assert len(nothing_new.json()["tests"]) == 6


async def test_cancel_before_result_and_refused_after(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    order = (
        await client.post("/api/v1/orders", json=order_body(world, "LFT"), headers=admin_headers)
    ).json()
    alt, ast = order["tests"]
    await orders_service.set_test_status(
        session, world.organisation.id, uuid.UUID(ast["id"]), OrderTestStatus.RESULTED
    )

    cancelled = await client.post(
        f"/api/v1/orders/{order['id']}/tests/{alt['id']}/cancel",
        json={"reason": "Patient declined", "version": alt["version"]},
        headers=admin_headers,
    )
    refused = await client.post(
        f"/api/v1/orders/{order['id']}/tests/{ast['id']}/cancel",
        json={"reason": "Too late"},
        headers=admin_headers,
    )
    twice = await client.post(
        f"/api/v1/orders/{order['id']}/tests/{alt['id']}/cancel",
        json={"reason": "Again"},
        headers=admin_headers,
    )

    assert cancelled.status_code == 200, cancelled.text
    tests = {t["code"]: t for t in cancelled.json()["tests"]}
    assert tests["ALT"]["status"] == "cancelled"
    assert tests["ALT"]["cancel_reason"] == "Patient declined"
    assert tests["ALT"]["cancelled_at"] is not None
    assert cancelled.json()["samples"][0]["tests"] == ["AST"]
    assert refused.status_code == 409
    assert (refused.json()["code"], refused.json()["from"], refused.json()["to"]) == (
        "illegal_transition",
        "resulted",
        "cancelled",
    )
    assert (twice.status_code, twice.json()["from"]) == (409, "cancelled")
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == alt["id"], AuditLog.action == "order_test.cancelled"
        )
    )
    assert entry is not None
    assert entry.changes["before"]["status"] == "active"
    assert entry.changes["after"]["status"] == "cancelled"


async def test_stale_version_on_cancel_is_409(
    client: httpx.AsyncClient, world: LabWorld, admin_headers
) -> None:
    order = (
        await client.post("/api/v1/orders", json=order_body(world, "GLU"), headers=admin_headers)
    ).json()
    test = order["tests"][0]
    response = await client.post(
        f"/api/v1/orders/{order['id']}/tests/{test['id']}/cancel",
        json={"reason": "x", "version": test["version"] + 1},
        headers=admin_headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "version_conflict"


async def test_order_completes_when_every_active_test_is_verified_and_reopens(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    order = (
        await client.post(
            "/api/v1/orders", json=order_body(world, "GLU", "ALT", "AST"), headers=admin_headers
        )
    ).json()
    glu, alt, ast = (uuid.UUID(t["id"]) for t in order["tests"])
    org = world.organisation.id

    async def state() -> tuple[str, bool]:
        body = (await client.get(f"/api/v1/orders/{order['id']}", headers=admin_headers)).json()
        return body["status"], body["completed_at"] is not None

    await orders_service.set_test_status(session, org, glu, OrderTestStatus.RESULTED)
    await orders_service.set_test_status(session, org, glu, OrderTestStatus.VERIFIED)
    await orders_service.set_test_status(session, org, alt, OrderTestStatus.VERIFIED)
    assert await state() == ("open", False)
    cancel = await client.post(
        f"/api/v1/orders/{order['id']}/tests/{ast}/cancel",
        json={"reason": "Not needed"},
        headers=admin_headers,
    )
    assert cancel.json()["status"] == "completed"
    assert await state() == ("completed", True)
    # A correction takes a verified test back to resulted: the order reopens.
    await orders_service.set_test_status(session, org, alt, OrderTestStatus.RESULTED)
    assert await state() == ("open", False)
    await orders_service.set_test_status(session, org, alt, OrderTestStatus.VERIFIED)
    assert await state() == ("completed", True)
    closed = await client.post(
        f"/api/v1/orders/{order['id']}/tests", json={"items": ["HB"]}, headers=admin_headers
    )
    assert (closed.status_code, closed.json()["code"]) == (409, "order_not_open")
    actions = list(
        await session.scalars(
            select(AuditLog.action).where(AuditLog.entity_id == order["id"]).order_by(AuditLog.id)
        )
    )
    assert actions == ["order.created", "order.completed", "order.reopened", "order.completed"]
    with pytest.raises(Exception, match="cancelled"):
        await orders_service.set_test_status(session, org, ast, OrderTestStatus.VERIFIED)


async def test_cancelling_every_test_cancels_the_order(
    client: httpx.AsyncClient, world: LabWorld, admin_headers
) -> None:
    order = (
        await client.post("/api/v1/orders", json=order_body(world, "GLU"), headers=admin_headers)
    ).json()
    response = await client.post(
        f"/api/v1/orders/{order['id']}/tests/{order['tests'][0]['id']}/cancel",
        json={"reason": "Duplicate order"},
        headers=admin_headers,
    )
    assert response.json()["status"] == "cancelled"
    # The tube stays (nothing is done on it); it lists no tests.
    assert [(s["status"], s["tests"]) for s in response.json()["samples"]] == [("ordered", [])]


async def test_rejection_orders_a_recollection_for_the_same_tests(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld
) -> None:
    desk = bearer_for(await create_user(session, world.organisation, roles=("front_desk",)))
    technician = await create_user(session, world.organisation, roles=("technician",))
    day = today()
    order = (
        await client.post(
            "/api/v1/orders", json=order_body(world, "LFT", "KFT", "GLU"), headers=desk
        )
    ).json()
    serum = order["samples"][0]
    tests = {t["code"]: t for t in order["tests"]}
    await client.post(
        f"/api/v1/orders/{order['id']}/tests/{tests['UREA']['id']}/cancel",
        json={"reason": "Not needed"},
        headers=desk,
    )
    await receive_samples(
        session, world.organisation, [await session.get(Sample, serum["id"])], branch=world.lab
    )

    response = await client.post(
        f"/api/v1/samples/{serum['accession']}/reject",
        json={"reason": "haemolysed", "note": "Grossly haemolysed"},
        headers=bearer_for(technician),
    )

    assert response.status_code == 200, response.text
    rejected, new = response.json()["rejected"], response.json()["recollection"]
    assert rejected["status"] == "rejected"
    assert (rejected["rejection_reason"], rejected["rejection_note"]) == (
        "haemolysed",
        "Grossly haemolysed",
    )
    assert rejected["recollection_id"] == new["id"]
    assert new["accession"] == f"LAB-{day}-0003"
    assert (new["specimen_type"], new["container"], new["branch_id"], new["status"]) == (
        "serum",
        "sst_yellow",
        str(world.lab.id),
        "ordered",
    )
    detail = (await client.get(f"/api/v1/orders/{order['id']}", headers=desk)).json()
    tests = {t["code"]: t for t in detail["tests"]}
    assert {c: tests[c]["accession"] for c in ("ALT", "AST", "CREA", "UREA", "GLU")} == {
        "ALT": new["accession"],
        "AST": new["accession"],
        "CREA": new["accession"],
        "UREA": serum["accession"],  # cancelled: stays on the rejected tube
        "GLU": f"LAB-{day}-0002",
    }
    assert [(s["accession"], s["status"], s["tests"]) for s in detail["samples"]] == [
        (serum["accession"], "rejected", []),
        (f"LAB-{day}-0002", "ordered", ["GLU"]),
        (new["accession"], "ordered", ["ALT", "AST", "CREA"]),
    ]
    rejection = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == serum["id"], AuditLog.action == "sample.rejected"
        )
    )
    assert rejection is not None
    assert rejection.actor_id == technician.id
    assert rejection.changes["after"]["recollection_id"] == new["id"]
    assert rejection.changes["after"]["rejection_reason"] == "haemolysed"
    created = await session.scalar(
        select(AuditLog).where(AuditLog.entity_id == new["id"], AuditLog.action == "sample.created")
    )
    assert created is not None
    assert created.changes["after"]["replaces"] == serum["accession"]
    recollected = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == order["id"], AuditLog.action == "order.recollection_ordered"
        )
    )
    assert recollected is not None
    assert sorted(recollected.changes["after"]["order_test_ids"]) == sorted(
        tests[c]["id"] for c in ("ALT", "AST", "CREA")
    )
    event = await session.scalar(
        select(OutboxEvent).where(
            OutboxEvent.organisation_id == world.organisation.id,
            OutboxEvent.name == "orders.sample_rejected",
        )
    )
    assert event is not None
    assert event.payload["accession"] == serum["accession"]
    assert event.payload["reason"] == "haemolysed"
    assert event.payload["recollection_id"] == new["id"]
    again = await client.post(
        f"/api/v1/samples/{serum['accession']}/reject",
        json={"reason": "clotted"},
        headers=bearer_for(technician),
    )
    assert (again.status_code, again.json()["from"], again.json()["to"]) == (
        409,
        "rejected",
        "rejected",
    )


async def test_rejecting_with_other_needs_a_note(
    client: httpx.AsyncClient, world: LabWorld, admin_headers
) -> None:
    order = (
        await client.post("/api/v1/orders", json=order_body(world, "GLU"), headers=admin_headers)
    ).json()
    accession = order["samples"][0]["accession"]
    response = await client.post(
        f"/api/v1/samples/{accession}/reject", json={"reason": "other"}, headers=admin_headers
    )
    assert (response.status_code, response.json()["field"]) == (422, "note")


async def test_labels_pdf_has_one_50_by_25_mm_page_per_tube(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    order = (
        await client.post(
            "/api/v1/orders", json=order_body(world, "CBC", "GLU", "LFT"), headers=admin_headers
        )
    ).json()
    accessions = [s["accession"] for s in order["samples"]]

    response = await client.get(order["labels_url"], headers=admin_headers)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    assert len(reader.pages) == 3
    for page, accession in zip(reader.pages, accessions, strict=True):
        assert (round(float(page.mediabox.width), 2), round(float(page.mediabox.height), 2)) == (
            LABEL_SIZE
        )
        text = page.extract_text()
        assert accession in text
        assert "Asha Kulkarni" in text
        assert order["order_number"] in text
        assert re.search(r"\d+Y/F", text)
        assert world.patient.mrn in text  # the MRN on every tube
        for code in ("edta_lavender", "sst_yellow", "fluoride_grey"):  # no internal codes
            assert code not in text
    containers = [
        " ".join(page.extract_text().split())
        for page in PdfReader(io.BytesIO(response.content)).pages
    ]
    assert any("Fluoride (grey top)" in text for text in containers)
    assert any("Serum (yellow top)" in text for text in containers)

    single = await client.get(order["samples"][1]["label_url"], headers=admin_headers)
    assert single.status_code == 200
    one = PdfReader(io.BytesIO(single.content))
    assert len(one.pages) == 1
    assert accessions[1] in one.pages[0].extract_text()
    missing = await client.get("/api/v1/samples/NOPE-20250101-0001/label", headers=admin_headers)
    assert missing.status_code == 404


async def test_printed_labels_are_kept_as_versioned_label_files(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    from nidaan.files.models import StoredFile

    order = (
        await client.post(
            "/api/v1/orders", json=order_body(world, "CBC", "GLU"), headers=admin_headers
        )
    ).json()
    first = await client.get(order["labels_url"], headers=admin_headers)
    again = await client.get(order["labels_url"], headers=admin_headers)
    assert first.content == again.content  # a reprint is byte for byte the same
    accession = order["samples"][0]["accession"]
    await client.post(
        f"/api/v1/samples/{accession}/reject",
        json={"reason": "haemolysed"},
        headers=admin_headers,
    )
    await client.get(order["labels_url"], headers=admin_headers)
    files = list(
        await session.scalars(
            select(StoredFile)
            .where(StoredFile.document_id == uuid.UUID(order["id"]), StoredFile.purpose == "label")
            .order_by(StoredFile.version)
        )
    )
    assert [(f.version, f.is_current) for f in files] == [(1, False), (2, True)]
    assert files[0].filename == f"labels-{order['order_number']}.pdf"
    kept = await client.get(f"/api/v1/files/{files[0].id}/content", headers=admin_headers)
    assert kept.content == first.content


async def test_order_tests_are_readable_through_the_service(
    session: AsyncSession, world: LabWorld
) -> None:
    order, samples, order_tests = await create_order(
        session, world.organisation, world.patient, [world.panels["CBC"], world.tests["GLU"]]
    )
    caller = system_principal(world.organisation)
    assert [t.id for t in await orders_service.tests_of(session, caller, order.id)] == [
        t.id for t in order_tests
    ]
    assert len(samples) == 2
    assert {t.sample_id for t in order_tests} == {s.id for s in samples}
    assert (
        await session.scalar(
            select(func.count()).select_from(OrderTest).where(OrderTest.order_id == order.id)
        )
        == 4
    )


async def test_merged_patient_is_refused_naming_the_survivor(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, admin_headers
) -> None:
    merged = await create_patient(session, world.organisation, merged_into_id=world.patient.id)
    response = await client.post(
        "/api/v1/orders",
        json={**order_body(world, "GLU"), "patient_id": str(merged.id)},
        headers=admin_headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "patient_merged"
    assert response.json()["merged_into_id"] == str(world.patient.id)
