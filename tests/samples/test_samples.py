"""Samples through the API: collect, manifests, dispatch, receive, worklists, branch limits,
illegal transitions (409 with from/to), versions and tenancy."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.samples.enums import SampleStatus
from nidaan.samples.models import Sample
from nidaan.samples.service import age_text, samples_service
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user
from tests.fixtures.orders import LabWorld, create_lab_world, create_order, system_principal


@pytest.fixture
async def world(session: AsyncSession, organisation: Organisation) -> LabWorld:
    return await create_lab_world(session, organisation)


async def headers_for(session: AsyncSession, world: LabWorld, *roles: str, branches=()) -> dict:  # type: ignore[no-untyped-def]
    return bearer_for(
        await create_user(session, world.organisation, roles=roles, branches=branches)
    )


async def tubes(session: AsyncSession, world: LabWorld, *codes: str, at=None) -> list[Sample]:  # type: ignore[no-untyped-def]
    _, samples, _ = await create_order(
        session,
        world.organisation,
        world.patient,
        [world.tests[c] for c in codes],
        branch=at or world.centre,
    )
    return samples


async def in_state(session: AsyncSession, world: LabWorld, state: SampleStatus) -> Sample:
    """A sample ordered at the lab and moved through the services into ``state``."""
    (sample,) = await tubes(session, world, "GLU", at=world.lab)
    caller = system_principal(world.organisation)
    steps = {
        SampleStatus.ORDERED: [],
        SampleStatus.COLLECTED: ["collect"],
        SampleStatus.RECEIVED: ["collect", "receive"],
        SampleStatus.IN_PROCESS: ["collect", "receive", "start_processing"],
        SampleStatus.COMPLETED: ["collect", "receive", "start_processing", "complete"],
    }
    if state == SampleStatus.REJECTED:
        return await samples_service.reject(session, caller, sample.id, "clotted")
    if state == SampleStatus.IN_TRANSIT:
        (sample,) = await tubes(session, world, "GLU")
        await samples_service.collect(session, caller, sample.id)
        manifest, _ = await samples_service.create_manifest(
            session,
            caller,
            _manifest(world, [sample.accession]),
        )
        await samples_service.dispatch_manifest(session, caller, manifest.id)
        return await samples_service.get(session, caller, sample.id)
    for step in steps[state]:
        sample = await getattr(samples_service, step)(session, caller, sample.id)
    return sample


def _manifest(world: LabWorld, accessions: list[str]):  # type: ignore[no-untyped-def]
    from nidaan.samples.schemas import ManifestCreate

    return ManifestCreate(
        from_branch_id=world.centre.id, to_branch_id=world.lab.id, accessions=accessions
    )


# Every event the API exposes, and the state it leads to.
API_EVENTS = {
    "collect": ("collected", "admin"),
    "receive": ("received", "admin"),
    "reject": ("rejected", "admin"),
}
LEGAL = {
    ("ordered", "collect"),
    ("collected", "receive"),
    ("in_transit", "receive"),
    *((s, "reject") for s in ("ordered", "collected", "in_transit", "received", "in_process")),
}


@pytest.mark.parametrize("state", list(SampleStatus))
async def test_every_illegal_transition_is_409_naming_from_and_to(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld, state: SampleStatus
) -> None:
    headers = await headers_for(session, world, "admin")
    for event, (target, _) in API_EVENTS.items():
        if (state.value, event) in LEGAL:
            continue
        sample = await in_state(session, world, state)
        body = {"reason": "clotted"} if event == "reject" else {}
        response = await client.post(
            f"/api/v1/samples/{sample.accession}/{event}", json=body, headers=headers
        )
        assert response.status_code == 409, (state, event, response.text)
        problem = response.json()
        assert (problem["code"], problem["from"], problem["to"]) == (
            "illegal_transition",
            state.value,
            target,
        )
        unchanged = await client.get(f"/api/v1/samples/{sample.accession}", headers=headers)
        assert unchanged.json()["status"] == state.value
    if state != SampleStatus.COLLECTED:
        # Only collected tubes go on a manifest (dispatch is the illegal event).
        sample = await in_state(session, world, state)
        response = await client.post(
            "/api/v1/manifests",
            json={
                "from_branch_id": str(world.centre.id),
                "to_branch_id": str(world.lab.id),
                "accessions": [sample.accession],
            },
            headers=headers,
        )
        assert response.status_code == 409, (state, response.text)
        assert (response.json()["from"], response.json()["to"]) == (state.value, "in_transit")


async def test_collect_manifest_dispatch_receive(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld
) -> None:
    phlebotomist = await headers_for(session, world, "phlebotomist", branches=[world.centre])
    technician = await headers_for(session, world, "technician", branches=[world.lab])
    blood, serum = await tubes(session, world, "HB", "ALT")

    for sample in (blood, serum):
        collected = await client.post(
            f"/api/v1/samples/{sample.accession}/collect",
            json={"version": sample.version},
            headers=phlebotomist,
        )
        assert collected.status_code == 200, collected.text
        assert collected.json()["status"] == "collected"
        assert collected.json()["collected_at_branch_id"] == str(world.centre.id)
        assert collected.json()["collected_at"] is not None
    created = await client.post(
        "/api/v1/manifests",
        json={
            "from_branch_id": str(world.centre.id),
            "to_branch_id": str(world.lab.id),
            "accessions": [serum.accession.lower(), blood.accession],
        },
        headers=phlebotomist,
    )
    assert created.status_code == 201, created.text
    manifest = created.json()
    assert manifest["status"] == "open"
    assert manifest["manifest_number"].startswith("MF-CC1-")
    assert manifest["manifest_number"].endswith("-01")
    assert [s["accession"] for s in manifest["samples"]] == [blood.accession, serum.accession]
    before_dispatch = await client.get("/api/v1/worklists/pending-receipt", headers=technician)
    assert before_dispatch.json()["items"] == []

    dispatched = await client.post(
        f"/api/v1/manifests/{manifest['id']}/dispatch",
        json={"courier": "Ravi (bike)", "version": manifest["version"]},
        headers=phlebotomist,
    )
    assert dispatched.status_code == 200, dispatched.text
    assert dispatched.json()["status"] == "dispatched"
    assert dispatched.json()["courier"] == "Ravi (bike)"
    assert dispatched.json()["dispatched_at"] is not None
    assert {s["status"] for s in dispatched.json()["samples"]} == {"in_transit"}
    pending = await client.get(
        "/api/v1/worklists/pending-receipt",
        params={"branch_id": str(world.lab.id)},
        headers=technician,
    )
    assert [s["accession"] for s in pending.json()["items"]] == [
        blood.accession,
        serum.accession,
    ]
    assert pending.json()["pagination"]["total_count"] == 2
    again = await client.post(
        f"/api/v1/manifests/{manifest['id']}/dispatch", json={}, headers=phlebotomist
    )
    assert (again.status_code, again.json()["from"], again.json()["to"]) == (
        409,
        "dispatched",
        "dispatched",
    )

    first = await client.post(f"/api/v1/samples/{blood.accession}/receive", headers=technician)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "received"
    assert first.json()["received_at"] is not None
    halfway = await client.get(f"/api/v1/manifests/{manifest['id']}", headers=technician)
    assert halfway.json()["status"] == "dispatched"
    second = await client.post(f"/api/v1/samples/{serum.accession}/receive", headers=technician)
    assert second.status_code == 200, second.text
    done = await client.get(f"/api/v1/manifests/{manifest['id']}", headers=technician)
    assert done.json()["status"] == "received"
    assert done.json()["received_at"] is not None
    assert (await client.get("/api/v1/worklists/pending-receipt", headers=technician)).json()[
        "items"
    ] == []

    actions = list(
        await session.scalars(
            select(AuditLog.action).where(AuditLog.entity_id == str(blood.id)).order_by(AuditLog.id)
        )
    )
    assert actions == ["sample.created", "sample.collected", "sample.dispatched", "sample.received"]
    manifest_actions = list(
        await session.scalars(
            select(AuditLog.action)
            .where(AuditLog.entity_id == manifest["id"])
            .order_by(AuditLog.id)
        )
    )
    assert manifest_actions == ["manifest.created", "manifest.dispatched", "manifest.received"]


async def test_collected_at_the_lab_is_received_directly(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld
) -> None:
    admin = await headers_for(session, world, "admin")
    (sample,) = await tubes(session, world, "GLU", at=world.lab)

    pending = await client.get("/api/v1/worklists/pending-collection", headers=admin)
    assert [s["accession"] for s in pending.json()["items"]] == [sample.accession]
    collected = await client.post(f"/api/v1/samples/{sample.accession}/collect", headers=admin)
    assert collected.status_code == 200
    receipt = await client.get("/api/v1/worklists/pending-receipt", headers=admin)
    assert [s["accession"] for s in receipt.json()["items"]] == [sample.accession]
    received = await client.post(
        f"/api/v1/samples/{sample.accession}/receive",
        json={"version": collected.json()["version"]},
        headers=admin,
    )

    assert received.status_code == 200, received.text
    assert received.json()["status"] == "received"
    assert received.json()["manifest_id"] is None
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(sample.id), AuditLog.action == "sample.received"
        )
    )
    assert entry is not None
    assert entry.changes["before"]["status"] == "collected"
    assert entry.changes["after"]["status"] == "received"


async def test_receiving_needs_a_central_lab_on_the_manifest_route(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld
) -> None:
    from nidaan.tenancy.enums import BranchKind
    from tests.fixtures.objects import create_branch

    admin = await headers_for(session, world, "admin")
    other_lab = await create_branch(
        session, world.organisation, code="LAB2", kind=BranchKind.CENTRAL_LAB
    )
    loose, shipped = await tubes(session, world, "GLU", "ALT")
    caller = system_principal(world.organisation)
    for sample in (loose, shipped):
        await samples_service.collect(session, caller, sample.id)
    manifest, _ = await samples_service.create_manifest(
        session, caller, _manifest(world, [shipped.accession])
    )
    await samples_service.dispatch_manifest(session, caller, manifest.id)

    at_centre = await client.post(f"/api/v1/samples/{loose.accession}/receive", headers=admin)
    elsewhere = await client.post(
        f"/api/v1/samples/{shipped.accession}/receive",
        json={"branch_id": str(other_lab.id)},
        headers=admin,
    )

    assert (at_centre.status_code, at_centre.json()["code"]) == (422, "branch_not_a_lab")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (409, "wrong_destination")


async def test_manifest_refuses_tubes_from_elsewhere_or_unknown(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld
) -> None:
    admin = await headers_for(session, world, "admin")
    caller = system_principal(world.organisation)
    (at_lab,) = await tubes(session, world, "GLU", at=world.lab)
    await samples_service.collect(session, caller, at_lab.id)
    (here,) = await tubes(session, world, "HB")
    await samples_service.collect(session, caller, here.id)
    body = {"from_branch_id": str(world.centre.id), "to_branch_id": str(world.lab.id)}

    elsewhere = await client.post(
        "/api/v1/manifests", json={**body, "accessions": [at_lab.accession]}, headers=admin
    )
    unknown = await client.post(
        "/api/v1/manifests", json={**body, "accessions": [here.accession, "CC1-X"]}, headers=admin
    )
    to_centre = await client.post(
        "/api/v1/manifests",
        json={**body, "to_branch_id": str(world.centre.id), "accessions": [here.accession]},
        headers=admin,
    )
    first = await client.post(
        "/api/v1/manifests", json={**body, "accessions": [here.accession]}, headers=admin
    )
    second = await client.post(
        "/api/v1/manifests", json={**body, "accessions": [here.accession]}, headers=admin
    )

    assert (elsewhere.status_code, elsewhere.json()["code"]) == (409, "sample_not_at_branch")
    assert (unknown.status_code, unknown.json()["unknown"]) == (422, ["CC1-X"])
    assert (to_centre.status_code, to_centre.json()["code"]) == (422, "branch_not_a_lab")
    assert first.status_code == 201
    assert (second.status_code, second.json()["code"]) == (409, "sample_on_manifest")


async def test_branch_limits_apply_to_collect_and_worklists(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld
) -> None:
    phlebotomist = await headers_for(session, world, "phlebotomist", branches=[world.centre])
    (at_lab,) = await tubes(session, world, "GLU", at=world.lab)
    (at_centre,) = await tubes(session, world, "HB")

    refused = await client.post(f"/api/v1/samples/{at_lab.accession}/collect", headers=phlebotomist)
    elsewhere = await client.post(
        f"/api/v1/samples/{at_centre.accession}/collect",
        json={"branch_id": str(world.lab.id)},
        headers=phlebotomist,
    )
    mine = await client.get("/api/v1/worklists/pending-collection", headers=phlebotomist)
    other = await client.get(
        "/api/v1/worklists/pending-collection",
        params={"branch_id": str(world.lab.id)},
        headers=phlebotomist,
    )

    assert (refused.status_code, refused.json()["code"]) == (403, "branch_not_allowed")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (403, "branch_not_allowed")
    assert [s["accession"] for s in mine.json()["items"]] == [at_centre.accession]
    assert (other.status_code, other.json()["code"]) == (403, "branch_not_allowed")
    sample = await session.get(Sample, at_lab.id)
    assert sample is not None
    assert sample.status == "ordered"


async def test_stale_version_is_409_version_conflict(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld
) -> None:
    admin = await headers_for(session, world, "admin")
    (sample,) = await tubes(session, world, "GLU")
    response = await client.post(
        f"/api/v1/samples/{sample.accession}/collect",
        json={"version": sample.version + 1},
        headers=admin,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "version_conflict"
    assert response.json()["current_version"] == sample.version


async def test_list_filters_and_tenant_isolation(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: LabWorld,
    other_organisation: Organisation,
) -> None:
    admin = await headers_for(session, world, "admin")
    blood, serum = await tubes(session, world, "HB", "ALT")
    (lab_tube,) = await tubes(session, world, "GLU", at=world.lab)
    await samples_service.collect(session, system_principal(world.organisation), serum.id)
    theirs = await create_lab_world(session, other_organisation)
    _, (their_tube,), _ = await create_order(
        session, other_organisation, theirs.patient, [theirs.tests["UREA"]], branch=theirs.lab
    )  # LAB-...-0001 there; ours at LAB is also -0001, so look them up by id below

    async def accessions(**params) -> list[str]:  # type: ignore[no-untyped-def]
        response = await client.get("/api/v1/samples", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [s["accession"] for s in response.json()["items"]]

    assert sorted(await accessions()) == sorted(
        [blood.accession, serum.accession, lab_tube.accession]
    )
    assert await accessions(status="collected") == [serum.accession]
    assert await accessions(branch_id=str(world.lab.id)) == [lab_tube.accession]
    assert sorted(await accessions(order_id=str(blood.order_id))) == sorted(
        [blood.accession, serum.accession]
    )
    assert await accessions(order_id=str(their_tube.order_id)) == []
    their_caller = system_principal(other_organisation)
    (their_shipped,) = await tubes(session, theirs, "GLU")
    await samples_service.collect(session, their_caller, their_shipped.id)
    their_manifest, _ = await samples_service.create_manifest(
        session, their_caller, _manifest(theirs, [their_shipped.accession])
    )
    for method, path in (
        ("GET", f"/api/v1/manifests/{their_manifest.id}"),
        ("POST", f"/api/v1/manifests/{their_manifest.id}/dispatch"),
    ):
        response = await client.request(method, path, headers=admin)
        assert response.status_code == 404, path
    own = await client.get(f"/api/v1/samples/{lab_tube.accession}", headers=admin)
    assert own.json()["id"] == str(lab_tube.id)
    assert own.json()["label_url"] == f"/api/v1/samples/{lab_tube.accession}/label"
    their_headers = bearer_for(await create_user(session, other_organisation, roles=("admin",)))
    # Both organisations number tubes from 0001 at their CC1 and LAB: only our CC1-...-0002
    # has no namesake there.
    for accession in (serum.accession,):
        response = await client.get(f"/api/v1/samples/{accession}", headers=their_headers)
        assert response.status_code == 404
        collect = await client.post(f"/api/v1/samples/{accession}/collect", headers=their_headers)
        assert collect.status_code == 404


def test_age_text() -> None:
    from datetime import date

    today = date(2025, 3, 15)
    assert age_text(date(1985, 6, 15), today) == "39Y"
    assert age_text(date(2023, 3, 15), today) == "2Y"
    assert age_text(date(2023, 3, 16), today) == "23M"
    assert age_text(date(2025, 2, 14), today) == "1M"
    assert age_text(date(2025, 2, 20), today) == "23D"
    assert age_text(None, today) == ""


async def test_receipt_records_the_lab_and_the_condition_of_the_sample(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld
) -> None:
    technician = await headers_for(session, world, "technician", branches=[world.lab])
    (sample,) = await tubes(session, world, "ALT")
    await samples_service.collect(session, system_principal(world.organisation), sample.id)
    received = await client.post(
        f"/api/v1/samples/{sample.accession}/receive",
        json={
            "branch_id": str(world.lab.id),
            "condition": ["lipaemic", "haemolysed", "lipaemic"],
            "remarks": "  Mild haemolysis; accepted.  ",
        },
        headers=technician,
    )
    assert received.status_code == 200, received.text
    body = received.json()
    assert body["received_at_branch_id"] == str(world.lab.id)
    assert body["receipt_condition"] == ["haemolysed", "lipaemic"]
    assert body["receipt_remarks"] == "Mild haemolysis; accepted."
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(sample.id), AuditLog.action == "sample.received"
        )
    )
    assert entry is not None
    assert entry.changes["after"]["receipt_condition"] == ["haemolysed", "lipaemic"]

    (other,) = await tubes(session, world, "ALT")
    await samples_service.collect(session, system_principal(world.organisation), other.id)
    refused = await client.post(
        f"/api/v1/samples/{other.accession}/receive",
        json={"condition": ["slightly odd"]},
        headers=technician,
    )
    assert refused.status_code == 422
    plain = await client.post(
        f"/api/v1/samples/{other.accession}/receive",
        json={"branch_id": str(world.lab.id)},
        headers=technician,
    )
    assert plain.status_code == 200, plain.text
    assert (plain.json()["receipt_condition"], plain.json()["receipt_remarks"]) == ([], None)


async def test_a_refused_receipt_writes_nothing_and_says_why(
    client: httpx.AsyncClient, session: AsyncSession, world: LabWorld
) -> None:
    """Receipt is one guarded UPDATE; whichever check fails, the tube is left as it was and
    the error is the one the step-by-step checks give."""
    admin = await headers_for(session, world, "admin")
    centre_only = await headers_for(session, world, "technician", branches=[world.centre])
    (sample,) = await tubes(session, world, "ALT")
    await samples_service.collect(session, system_principal(world.organisation), sample.id)
    await session.refresh(sample)
    version = sample.version
    url = f"/api/v1/samples/{sample.accession}/receive"

    attempts = [
        (admin, {"version": version + 1}, 409, "version_conflict"),
        (admin, {"branch_id": str(world.centre.id)}, 422, "branch_not_a_lab"),
        (admin, {}, 422, "branch_not_a_lab"),  # collected at the centre: no lab to default to
        (centre_only, {"branch_id": str(world.lab.id)}, 403, "branch_not_allowed"),
    ]
    for headers, body, status, code in attempts:
        response = await client.post(url, json=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text

    await session.refresh(sample)
    assert (sample.status, sample.version, sample.received_at) == ("collected", version, None)
    received = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(sample.id), AuditLog.action == "sample.received"
        )
    )
    assert received is None

    done = await client.post(
        url, json={"version": version, "branch_id": str(world.lab.id)}, headers=admin
    )
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["version"]) == ("received", version + 1)
    again = await client.post(url, json={"branch_id": str(world.lab.id)}, headers=admin)
    assert (again.status_code, again.json()["code"]) == (409, "illegal_transition")
