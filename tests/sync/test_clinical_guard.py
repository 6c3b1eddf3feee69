"""The guard on clinical (GUARDED) fields: who may edit without a base version, and which base
versions count (issue 10 "Offline sync", issue 18 item 11).

The rule: the device that created the row, or wrote the field last, may edit it without a
``baseVersion``; anyone else must send the version they edited, and that version must be one
the server has issued for the row. The outcome never depends on how ops are batched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from nidaan.kit.ids import new_id
from nidaan.sync.client.engine import SyncClient
from nidaan.sync.client.errors import PermanentError
from nidaan.sync.client.store import LocalStore
from nidaan.sync.client.transport import Transport
from nidaan.sync.models import SyncClient as SyncClientRow
from tests.fixtures.objects import (
    TEST_PASSWORD,
    create_branch,
    create_organisation,
    create_user,
)
from tests.sync.conftest import SYNC, Device, SyncLab, gql
from tests.sync.test_merge_classes import patient_data, registered


async def test_clinical_edit_of_a_row_created_in_the_same_push_is_applied(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab
) -> None:
    """A desk registers a patient offline and marks her pregnant before syncing."""
    desk = Device(live_client, sync_lab.desk1)
    patient_id = str(new_id())
    create = desk.op("patient", patient_id, "create", patient_data(sync_lab))
    edit = desk.op("patient", patient_id, "update", {"pregnant": True})
    answer = await desk.sync(create, edit)
    assert [r["status"] for r in answer["results"]] == ["APPLIED", "APPLIED"], answer["results"]
    assert desk.row("patient", patient_id)["data"]["pregnant"] is True


async def test_create_then_clinical_edit_outcome_does_not_depend_on_batching(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab
) -> None:
    one_push = Device(live_client, sync_lab.desk1)
    two_pushes = Device(live_client, sync_lab.desk1)
    together, apart = str(new_id()), str(new_id())
    data = patient_data(sync_lab, pregnant=False)
    first = await one_push.sync(
        one_push.op("patient", together, "create", data),
        one_push.op("patient", together, "update", {"pregnant": True, "city": "Pune"}),
        one_push.op("patient", together, "update", {"pregnant": None}),
    )
    second = [
        await two_pushes.sync(two_pushes.op("patient", apart, "create", data)),
        await two_pushes.sync(
            two_pushes.op("patient", apart, "update", {"pregnant": True, "city": "Pune"})
        ),
        await two_pushes.sync(two_pushes.op("patient", apart, "update", {"pregnant": None})),
    ]
    assert [r["status"] for r in first["results"]] == ["APPLIED"] * 3
    assert [s["results"][0]["status"] for s in second] == ["APPLIED"] * 3
    mine, theirs = one_push.row("patient", together), two_pushes.row("patient", apart)
    for field in ("pregnant", "city"):
        assert mine["data"][field] == theirs["data"][field]
    assert mine["data"]["pregnant"] is None
    assert mine["data"]["city"] == "Pune"


async def test_guard_still_needs_a_base_version_from_anyone_but_the_last_writer(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab
) -> None:
    creator = Device(live_client, sync_lab.desk1)
    other = Device(live_client, sync_lab.desk2, sync_lab.cc1.id)
    patient_id = await registered(creator, sync_lab, pregnant=False)
    # Not the creator, no base version: refused, also in the same push as a valid edit.
    await other.sync()
    base = other.row("patient", patient_id)["seq"]
    blind = await other.sync(other.op("patient", patient_id, "update", {"pregnant": True}))
    assert blind["results"][0]["status"] == "REJECTED"
    assert "baseVersion" in blind["results"][0]["reason"]
    seen = other.op("patient", patient_id, "update", {"pregnant": True}, baseVersion=base)
    assert (await other.sync(seen))["results"][0]["status"] == "APPLIED"
    # Now the other device wrote the field last: the creator must send a base version too.
    late = await creator.sync(creator.op("patient", patient_id, "update", {"pregnant": False}))
    assert late["results"][0]["status"] == "REJECTED"
    assert creator.row("patient", patient_id)["data"]["pregnant"] is True
    # ... and the other device, the last writer, may go on without one (same push or not).
    again = await other.sync(
        other.op("patient", patient_id, "update", {"pregnant": None}),
        other.op("patient", patient_id, "update", {"pregnant": True}),
    )
    assert [r["status"] for r in again["results"]] == ["APPLIED", "APPLIED"]


async def test_reference_client_create_update_sync_keeps_the_clinical_edit(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session: Any, tmp_path: Path
) -> None:
    async with committing_session() as session:
        user = await create_user(
            session, sync_lab.organisation, roles=("front_desk",), branches=[sync_lab.cc1]
        )
    client = _reference_client(live_client, tmp_path / "desk.sqlite", user.email, sync_lab)
    patient_id = client.create("patient", patient_data(sync_lab))
    client.update("patient", patient_id, {"pregnant": True})
    report = await client.sync()
    assert (report.applied, report.rejected) == (2, 0), report.results
    assert client.failed() == []
    row = client.get("patient", patient_id)
    assert row is not None
    assert row.data["pregnant"] is True
    assert row.pending == 0


async def test_base_version_from_the_future_is_rejected(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab
) -> None:
    creator = Device(live_client, sync_lab.desk1)
    other = Device(live_client, sync_lab.desk2, sync_lab.cc1.id)
    patient_id = await registered(creator, sync_lab, pregnant=False)
    await other.sync()
    base = other.row("patient", patient_id)["seq"]
    # Someone else changes the field after the other device's copy ...
    moved = await creator.sync(
        creator.op("patient", patient_id, "update", {"pregnant": True}, baseVersion=base)
    )
    assert moved["results"][0]["status"] == "APPLIED"
    # ... and a made-up version "newer than anything" must not slip past the guard.
    for made_up in (999_999, -1):
        forged = await other.sync(
            other.op("patient", patient_id, "update", {"pregnant": False}, baseVersion=made_up)
        )
        assert forged["results"][0]["status"] == "REJECTED", forged["results"]
        assert "baseVersion" in forged["results"][0]["reason"]
    # The same through queueOperation (always-online callers).
    queued = await gql(
        live_client,
        sync_lab.desk2,
        """mutation Q($id: ID!) { queueOperation(entity: "patient", operation: "update",
             data: {pregnant: false}, entityId: $id, baseVersion: 999999) { status reason } }""",
        id=patient_id,
    )
    assert queued["data"]["queueOperation"]["status"] == "REJECTED"
    await other.sync()
    assert other.row("patient", patient_id)["data"]["pregnant"] is True
    # A stale but real version still opens a conflict, as before.
    stale = await other.sync(
        other.op("patient", patient_id, "update", {"pregnant": False}, baseVersion=base)
    )
    assert stale["results"][0]["status"] == "CONFLICT"


async def test_a_device_cannot_bind_to_another_organisations_branch(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session: Any, tmp_path: Path
) -> None:
    async with committing_session() as session:
        elsewhere = await create_organisation(session)
        their_branch = await create_branch(session, elsewhere)
        admin_email = (await create_user(session, sync_lab.organisation, roles=("admin",))).email
    for headers in (sync_lab.admin, sync_lab.desk1):
        device = str(new_id())
        body = await gql(
            live_client, headers, SYNC, clientId=device, branchId=str(their_branch.id), ops=[]
        )
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["status"] == 404, body
        async with committing_session() as session:
            bound = await session.scalar(
                select(func.count()).select_from(SyncClientRow).where(SyncClientRow.id == device)
            )
        assert bound == 0
    # The reference client pointed at that branch is refused the same way, and queues nothing
    # away: its change stays in the outbox.
    agent = SyncClient(
        LocalStore(tmp_path / "elsewhere.sqlite"),
        Transport("", email=admin_email, password=TEST_PASSWORD, http=live_client),
        branch_id=str(their_branch.id),
    )
    agent.create("patient", patient_data(sync_lab))
    with pytest.raises(PermanentError, match="branch"):
        await agent.sync()
    assert len(agent.pending()) == 1
    # An existing device may not move there either.
    mine = Device(live_client, sync_lab.admin, sync_lab.cc1.id)
    await mine.sync()
    moved = await gql(
        live_client, sync_lab.admin, SYNC, clientId=mine.id, branchId=str(their_branch.id)
    )
    assert moved["errors"][0]["extensions"]["status"] == 404
    async with committing_session() as session:
        row = await session.get(SyncClientRow, mine.id)
        assert row is not None
        assert str(row.branch_id) == str(sync_lab.cc1.id)


def _reference_client(http: httpx.AsyncClient, path: Path, email: str, lab: SyncLab) -> SyncClient:
    transport = Transport("", email=email, password=TEST_PASSWORD, http=http)
    return SyncClient(LocalStore(path), transport, branch_id=str(lab.cc1.id))
