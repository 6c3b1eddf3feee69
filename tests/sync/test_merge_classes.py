"""Server semantics of each merge class, through GraphQL on real transactions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from nidaan.kit.ids import new_id
from nidaan.sync.hlc import HLC
from nidaan.sync.models import SyncAppliedOp, SyncConflict, SyncFieldHistory
from tests.sync.conftest import Device, SyncLab

RESOLVE = """
mutation R($id: ID!, $resolution: Resolution!, $reason: String!, $value: JSON) {
  resolveConflict(conflictId: $id, resolution: $resolution, reason: $reason, value: $value) {
    id status resolution resolutionValue version
  }
}
"""


def patient_data(lab: SyncLab, **extra: Any) -> dict[str, Any]:
    return {
        "full_name": "Asha Verma",
        "sex": "female",
        "age_years": 34,
        "registered_at_branch_id": str(lab.cc1.id),
        **extra,
    }


async def registered(device: Device, lab: SyncLab, **extra: Any) -> str:
    patient_id = str(new_id())
    result = await device.sync(
        device.op("patient", patient_id, "create", patient_data(lab, **extra))
    )
    assert result["results"][0]["status"] == "APPLIED", result
    return patient_id


async def test_lww_newer_clock_wins_and_loser_is_kept(live_client, sync_lab, committing_session):  # type: ignore[no-untyped-def]
    a = Device(live_client, sync_lab.desk1)
    b = Device(live_client, sync_lab.desk2, sync_lab.cc1.id)
    patient_id = await registered(a, sync_lab)
    await b.sync()
    base = b.row("patient", patient_id)["seq"]
    early = a.op("patient", patient_id, "update", {"city": "Pune"}, baseVersion=base)
    late = b.op("patient", patient_id, "update", {"city": "Mumbai"}, baseVersion=base)
    # The later edit reaches the server first; the earlier one must lose, not overwrite.
    assert (await b.sync(late))["results"][0]["status"] == "APPLIED"
    assert (await a.sync(early))["results"][0]["status"] == "APPLIED"
    await a.sync()
    assert a.row("patient", patient_id)["data"]["city"] == "Mumbai"
    async with committing_session() as session:
        lost = await session.scalar(
            select(SyncFieldHistory).where(
                SyncFieldHistory.entity_id == patient_id,
                SyncFieldHistory.field == "city",
                SyncFieldHistory.outcome == "lost",
            )
        )
    assert lost is not None
    assert lost.value == "Pune"
    assert lost.outcome == "lost"


async def test_identity_edit_opens_review_once(live_client, sync_lab, committing_session):  # type: ignore[no-untyped-def]
    a = Device(live_client, sync_lab.desk1)
    b = Device(live_client, sync_lab.desk2, sync_lab.cc1.id)
    patient_id = await registered(a, sync_lab)
    await b.sync()
    base = b.row("patient", patient_id)["seq"]
    first = a.op("patient", patient_id, "update", {"full_name": "Asha Varma"}, baseVersion=base)
    second = b.op("patient", patient_id, "update", {"full_name": "Aasha Verma"}, baseVersion=base)
    assert (await a.sync(first))["results"][0]["status"] == "APPLIED"
    answer = await b.sync(second)
    result = answer["results"][0]
    assert result["status"] == "CONFLICT"
    assert result["conflictId"]
    assert answer["conflicts"][0]["kind"] == "LWW_REVIEW"
    assert answer["conflicts"][0]["serverValue"] == "Asha Varma"
    assert answer["conflicts"][0]["clientValue"] == "Aasha Verma"
    # A replay of the same call answers the same and opens nothing new.
    b.seq -= 1
    replay = await b.sync(second)
    assert replay["results"][0] == result
    async with committing_session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(SyncConflict)
            .where(SyncConflict.entity_id == patient_id)
        )
        applied = await session.scalar(
            select(func.count())
            .select_from(SyncAppliedOp)
            .where(SyncAppliedOp.op_id == second["opId"])
        )
    assert count == 1
    assert applied == 1
    # The newer clock won (auto-applied), and the review is listed for the front desk.
    await a.sync()
    assert a.row("patient", patient_id)["data"]["full_name"] == "Aasha Verma"
    listed = await live_client.get("/api/v1/sync/conflicts", headers=sync_lab.desk1)
    assert [c["id"] for c in listed.json()["items"]] == [result["conflictId"]]


async def test_guarded_field_conflict_needs_pathologist(live_client, sync_lab):  # type: ignore[no-untyped-def]
    a = Device(live_client, sync_lab.desk1)
    b = Device(live_client, sync_lab.desk2, sync_lab.cc1.id)
    patient_id = await registered(a, sync_lab, pregnant=False)
    await b.sync()
    base = b.row("patient", patient_id)["seq"]
    assert (
        await a.sync(a.op("patient", patient_id, "update", {"pregnant": True}, baseVersion=base))
    )["results"][0]["status"] == "APPLIED"
    stale = await b.sync(
        b.op("patient", patient_id, "update", {"pregnant": False}, baseVersion=base)
    )
    conflict_id = stale["results"][0]["conflictId"]
    assert stale["results"][0]["status"] == "CONFLICT"
    assert stale["conflicts"][0]["kind"] == "CLINICAL_MANUAL"
    # Never merged: the server keeps its value until someone decides.
    await b.sync()
    assert b.row("patient", patient_id)["data"]["pregnant"] is True
    from tests.sync.conftest import gql

    refused = await gql(
        live_client,
        sync_lab.admin,
        RESOLVE,
        id=conflict_id,
        resolution="TAKE_CLIENT",
        reason="checked",
    )
    assert refused["errors"][0]["extensions"]["code"] == "forbidden"
    taken = await gql(
        live_client,
        sync_lab.pathologist,
        RESOLVE,
        id=conflict_id,
        resolution="TAKE_CLIENT",
        reason="Phoned the patient: not pregnant",
    )
    assert taken["data"]["resolveConflict"]["status"] == "RESOLVED"
    again = await gql(
        live_client,
        sync_lab.pathologist,
        RESOLVE,
        id=conflict_id,
        resolution="TAKE_CLIENT",
        reason="Phoned the patient: not pregnant",
    )
    assert again["data"]["resolveConflict"] == taken["data"]["resolveConflict"]
    other = await gql(
        live_client,
        sync_lab.pathologist,
        RESOLVE,
        id=conflict_id,
        resolution="KEEP_SERVER",
        reason="changed my mind",
    )
    assert other["errors"][0]["extensions"]["code"] == "conflict_already_resolved"
    await b.sync()
    assert b.row("patient", patient_id)["data"]["pregnant"] is False


async def test_sequence_gap_and_group_rollback(live_client, sync_lab):  # type: ignore[no-untyped-def]
    a = Device(live_client, sync_lab.desk1)
    patient_id = await registered(a, sync_lab)
    skipped = a.op("patient", patient_id, "update", {"city": "Pune"})
    after = a.op("patient", patient_id, "update", {"city": "Delhi"})
    gap = await a.sync(after)
    assert gap["results"][0]["status"] == "GAP"
    assert gap["results"][0]["expectedSeq"] == skipped["clientSeq"]
    both = await a.sync(skipped, after)
    assert [r["status"] for r in both["results"]] == ["APPLIED", "APPLIED"]
    # A group with one bad op applies nothing.
    good = a.op("patient", patient_id, "update", {"city": "Agra"}, txGroup="g1")
    bad = a.op("patient", patient_id, "update", {"pincode": "12"}, txGroup="g1")
    group = await a.sync(good, bad)
    assert [r["status"] for r in group["results"]] == ["REJECTED", "REJECTED"]
    assert "rolled back" in group["results"][0]["reason"]
    assert a.row("patient", patient_id)["data"]["city"] == "Delhi"


async def test_roles_branches_and_clock(live_client, sync_lab):  # type: ignore[no-untyped-def]
    tech = Device(live_client, sync_lab.technician)
    refused = await tech.sync(tech.op("patient", new_id(), "create", patient_data(sync_lab)))
    assert refused["results"][0]["status"] == "REJECTED"
    assert "forbidden" in refused["results"][0]["reason"]
    desk = Device(live_client, sync_lab.desk1)
    elsewhere = patient_data(sync_lab, registered_at_branch_id=str(sync_lab.cc2.id))
    outside = await desk.sync(desk.op("patient", new_id(), "create", elsewhere))
    assert outside["results"][0]["status"] == "REJECTED"
    # A later op still applies: a refusal never blocks the queue.
    future = Device(live_client, sync_lab.desk1)
    future.clock.offset_ms = 2 * 24 * 3600 * 1000
    patient_id = str(new_id())
    ahead = await future.sync(future.op("patient", patient_id, "create", patient_data(sync_lab)))
    assert ahead["results"][0]["status"] == "APPLIED"
    assert ahead["clockSuspect"] is True
    server = HLC.parse(ahead["serverHlc"])
    assert server.wall_ms < future.clock.physical_ms() - 24 * 3600 * 1000


async def test_scope_and_schema_window(live_client, sync_lab):  # type: ignore[no-untyped-def]
    cc1 = Device(live_client, sync_lab.desk1)
    cc2 = Device(live_client, sync_lab.desk2, sync_lab.cc2.id)
    old = Device(live_client, sync_lab.desk1)
    patient_id = str(new_id())
    v1 = old.op(
        "patient",
        patient_id,
        "create",
        {
            "name": "Ravi Kumar",
            "sex": "male",
            "age_years": 50,
            "phone": "9876543210",
            "registered_at_branch_id": str(sync_lab.cc1.id),
        },
        schemaVersion=1,
    )
    assert (await old.sync(v1, schema=2))["results"][0]["status"] == "APPLIED"
    await cc1.sync()
    await cc2.sync()
    assert cc1.row("patient", patient_id)["data"]["full_name"] == "Ravi Kumar"
    assert ("patient", patient_id) not in cc2.rows
    from tests.sync.conftest import SYNC, gql

    too_old = await gql(live_client, sync_lab.desk1, SYNC, clientId=old.id, schema=0)
    assert too_old["data"]["syncPendingOperations"]["upgradeRequired"] is True
