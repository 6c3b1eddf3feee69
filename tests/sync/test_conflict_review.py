"""Reviewing conflicts: a stale decision never undoes a later write, reviewers see the current
value, and who may decide is the same in docs/sync.md and the code (issue 10 "Offline sync")."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from nidaan.auth.enums import Role
from nidaan.sync.client.engine import SyncClient
from nidaan.sync.client.errors import PermanentError
from nidaan.sync.client.store import LocalStore
from nidaan.sync.client.transport import Transport
from nidaan.sync.conflicts import RESOLVERS
from nidaan.sync.models import SyncConflict
from tests.fixtures.objects import TEST_PASSWORD, create_user
from tests.sync.conftest import Device, SyncLab, gql
from tests.sync.test_merge_classes import patient_data, registered

DOCS = Path(__file__).parents[2] / "docs" / "sync.md"
RESOLVE = """
mutation R($id: ID!, $resolution: Resolution!, $reason: String!, $version: Int) {
  resolveConflict(conflictId: $id, resolution: $resolution, reason: $reason,
                  expectedVersion: $version) {
    id status resolution currentValue canResolve version
  }
}
"""
LIST = "query { conflicts { id kind status serverValue clientValue currentValue canResolve } }"


async def _stale_conflict_then_later_write(
    live_client: httpx.AsyncClient, lab: SyncLab
) -> tuple[Device, Device, str, dict[str, Any]]:
    """A sets pregnant=true; B sets false from an older base (conflict, server true); A then
    sets null from a fresh base (applied)."""
    a = Device(live_client, lab.desk1)
    b = Device(live_client, lab.desk2, lab.cc1.id)
    patient_id = await registered(a, lab)
    await b.sync()
    old = b.row("patient", patient_id)["seq"]
    first = await a.sync(a.op("patient", patient_id, "update", {"pregnant": True}, baseVersion=old))
    assert first["results"][0]["status"] == "APPLIED"
    stale = await b.sync(
        b.op("patient", patient_id, "update", {"pregnant": False}, baseVersion=old)
    )
    assert stale["results"][0]["status"] == "CONFLICT"
    opened = stale["conflicts"][0]
    assert (opened["status"], opened["serverValue"], opened["clientValue"]) == ("OPEN", True, False)
    # The pathologist looks at it now (version, values), and decides later.
    seen = await gql(live_client, lab.pathologist, LIST)
    (listed,) = [c for c in seen["data"]["conflicts"] if c["id"] == opened["id"]]
    assert listed["currentValue"] is True
    assert listed["canResolve"] is True
    fresh = a.row("patient", patient_id)["seq"]
    later = await a.sync(
        a.op("patient", patient_id, "update", {"pregnant": None}, baseVersion=fresh)
    )
    assert later["results"][0]["status"] == "APPLIED"
    return a, b, patient_id, opened


async def test_stale_resolution_cannot_undo_a_later_write(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session: Any
) -> None:
    a, b, patient_id, opened = await _stale_conflict_then_later_write(live_client, sync_lab)
    # The conflict is superseded at once, and shows the value that superseded it.
    now = await gql(live_client, sync_lab.pathologist, LIST)
    assert opened["id"] not in [c["id"] for c in now["data"]["conflicts"]]  # no longer OPEN
    await b.sync()
    pulled = b.row("conflict", opened["id"])["data"]
    assert pulled["status"] == "SUPERSEDED"
    assert pulled["current_value"] is None
    assert pulled["server_value"] is True  # what it showed when it opened, kept for the record
    # KEEP_SERVER (the value shown when it opened) must not bring `true` back.
    for resolution in ("KEEP_SERVER", "TAKE_CLIENT"):
        refused = await gql(
            live_client,
            sync_lab.pathologist,
            RESOLVE,
            id=opened["id"],
            resolution=resolution,
            reason="checked with the patient",
        )
        assert refused["errors"][0]["extensions"]["code"] == "conflict_superseded"
        assert refused["errors"][0]["extensions"]["current_value"] is None
    await a.sync()
    assert a.row("patient", patient_id)["data"]["pregnant"] is None
    async with committing_session() as session:
        row = await session.get(SyncConflict, opened["id"])
        assert row is not None
        assert (row.status, row.resolution, row.current_value) == ("SUPERSEDED", None, None)
        assert "superseded" in (row.resolution_reason or "")


async def test_reference_client_sees_the_stale_conflict_superseded(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session: Any, tmp_path: Path
) -> None:
    """The same story with the reference client: create, update, sync on two devices."""
    async with committing_session() as session:
        users = [
            await create_user(
                session, sync_lab.organisation, roles=("front_desk",), branches=[sync_lab.cc1]
            )
            for _ in range(2)
        ]
        pathologist = await create_user(session, sync_lab.organisation, roles=("pathologist",))
    a, b = (
        _client(live_client, tmp_path / f"{n}.sqlite", u.email, sync_lab)
        for n, u in zip("ab", users, strict=True)
    )
    doctor = _client(live_client, tmp_path / "doctor.sqlite", pathologist.email, None)
    patient_id = a.create("patient", patient_data(sync_lab))
    a.update("patient", patient_id, {"pregnant": True})
    await a.sync()
    await b.sync()  # b's copy: pregnant true
    b.update("patient", patient_id, {"pregnant": False})
    await a.sync()
    a.update("patient", patient_id, {"pregnant": None})  # a, the last writer, clears it ...
    a.update("patient", patient_id, {"pregnant": True})  # ... and sets it again
    await a.sync()
    b_report = await b.sync()  # b's edit came from an older base: a conflict
    assert b_report.conflicts == 1, b_report.results
    (conflict,) = b.conflicts()
    a.update("patient", patient_id, {"pregnant": None})
    await a.sync()  # a later write: the conflict is superseded
    await b.sync()
    assert b.conflicts() == []
    (closed,) = b.conflicts(status=None)
    assert closed.status == "SUPERSEDED"
    with pytest.raises(PermanentError, match="changed after this conflict opened"):
        await doctor.resolve_conflict(conflict.id, "KEEP_SERVER", "stale view")
    await a.sync()
    row = a.get("patient", patient_id)
    assert row is not None
    assert row.data["pregnant"] is None


async def test_a_rest_edit_supersedes_an_open_conflict_and_a_stale_version_is_refused(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab
) -> None:
    a = Device(live_client, sync_lab.desk1)
    b = Device(live_client, sync_lab.desk2, sync_lab.cc1.id)
    patient_id = await registered(a, sync_lab, pregnant=False)
    await b.sync()
    base = b.row("patient", patient_id)["seq"]
    await a.sync(a.op("patient", patient_id, "update", {"pregnant": True}, baseVersion=base))
    stale = await b.sync(
        b.op("patient", patient_id, "update", {"pregnant": None}, baseVersion=base)
    )
    conflict = stale["conflicts"][0]
    await a.sync()
    version = a.row("patient", patient_id)["data"]["version"]
    edited = await live_client.patch(
        f"/api/v1/patients/{patient_id}",
        json={"version": version, "pregnant": False},
        headers=sync_lab.desk1,
    )
    assert edited.status_code == 200, edited.text
    shown = await live_client.get(
        f"/api/v1/sync/conflicts/{conflict['id']}", headers=sync_lab.pathologist
    )
    body = shown.json()
    assert (body["status"], body["current_value"], body["server_value"]) == (
        "SUPERSEDED",
        False,
        True,
    )
    refused = await gql(
        live_client,
        sync_lab.pathologist,
        RESOLVE,
        id=conflict["id"],
        resolution="TAKE_CLIENT",
        reason="stale",
        version=body["version"],
    )
    assert refused["errors"][0]["extensions"]["code"] == "conflict_superseded"


async def test_resolving_one_conflict_supersedes_its_siblings(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab
) -> None:
    """Two stale edits of one field: deciding one changes the field, so the other (which was
    about the value before that decision) is superseded rather than decided blind."""
    a = Device(live_client, sync_lab.desk1)
    b = Device(live_client, sync_lab.desk2, sync_lab.cc1.id)
    c = Device(live_client, sync_lab.admin, sync_lab.cc1.id)
    patient_id = await registered(a, sync_lab, pregnant=False)
    await b.sync()
    await c.sync()
    base = b.row("patient", patient_id)["seq"]
    await a.sync(a.op("patient", patient_id, "update", {"pregnant": True}, baseVersion=base))
    first = await b.sync(
        b.op("patient", patient_id, "update", {"pregnant": None}, baseVersion=base)
    )
    second = await c.sync(
        c.op("patient", patient_id, "update", {"pregnant": None}, baseVersion=base)
    )
    one, two = first["results"][0]["conflictId"], second["results"][0]["conflictId"]
    decided = await gql(
        live_client, sync_lab.pathologist, RESOLVE, id=one, resolution="TAKE_CLIENT", reason="ok"
    )
    assert decided["data"]["resolveConflict"]["status"] == "RESOLVED"
    assert decided["data"]["resolveConflict"]["currentValue"] is None
    other = await live_client.get(f"/api/v1/sync/conflicts/{two}", headers=sync_lab.pathologist)
    assert other.json()["status"] == "SUPERSEDED"
    # Deciding the same thing again stays a no-op answer.
    again = await gql(
        live_client, sync_lab.pathologist, RESOLVE, id=one, resolution="TAKE_CLIENT", reason="ok"
    )
    assert again["data"]["resolveConflict"]["status"] == "RESOLVED"


async def test_clinical_conflicts_are_decided_and_listed_by_pathologists_only(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session: Any, tmp_path: Path
) -> None:
    a = Device(live_client, sync_lab.desk1)
    b = Device(live_client, sync_lab.desk2, sync_lab.cc1.id)
    patient_id = await registered(a, sync_lab, pregnant=False)
    await b.sync()
    base = b.row("patient", patient_id)["seq"]
    await a.sync(a.op("patient", patient_id, "update", {"pregnant": True}, baseVersion=base))
    stale = await b.sync(
        b.op("patient", patient_id, "update", {"pregnant": None}, baseVersion=base)
    )
    conflict_id = stale["results"][0]["conflictId"]
    # The front desk and the admin may not decide a clinical value (docs/sync.md agrees) ...
    for headers in (sync_lab.desk1, sync_lab.admin):
        refused = await gql(
            live_client, headers, RESOLVE, id=conflict_id, resolution="TAKE_CLIENT", reason="x"
        )
        assert refused["errors"][0]["extensions"]["code"] == "forbidden"
    # ... the front desk's list does not offer it; the pathologist's does, as actionable; the
    # admin and the auditor see it for oversight, marked as not theirs to decide.
    lists = {
        name: (await live_client.get("/api/v1/sync/conflicts", headers=headers)).json()["items"]
        for name, headers in (
            ("desk", sync_lab.desk1),
            ("pathologist", sync_lab.pathologist),
            ("admin", sync_lab.admin),
            ("auditor", sync_lab.auditor),
        )
    }
    assert conflict_id not in [c["id"] for c in lists["desk"]]
    for name, can in (("pathologist", True), ("admin", False), ("auditor", False)):
        (item,) = [c for c in lists[name] if c["id"] == conflict_id]
        assert item["can_resolve"] is can, name
        assert item["current_value"] is True
    # The reference client of a front desk is refused too, and keeps the conflict open.
    async with committing_session() as session:
        desk = await create_user(
            session, sync_lab.organisation, roles=("front_desk",), branches=[sync_lab.cc1]
        )
    agent = _client(live_client, tmp_path / "desk.sqlite", desk.email, sync_lab)
    with pytest.raises(PermanentError, match="pathologist"):
        await agent.resolve_conflict(conflict_id, "TAKE_CLIENT", "the patient says so")
    done = await gql(
        live_client,
        sync_lab.pathologist,
        RESOLVE,
        id=conflict_id,
        resolution="KEEP_SERVER",
        reason="confirmed",
    )
    assert done["data"]["resolveConflict"]["status"] == "RESOLVED"


def test_docs_name_the_same_resolvers_as_the_code() -> None:
    """docs/sync.md's table of who decides each kind of conflict is the code's RESOLVERS."""
    text = DOCS.read_text(encoding="utf-8")
    table = re.search(r"\| conflict kind \| who decides \|\n\|[-| ]+\|\n((?:\|.*\|\n)+)", text)
    assert table is not None, "docs/sync.md lost its table of who decides conflicts"
    documented: dict[str, set[str]] = {}
    for line in table.group(1).splitlines():
        kind, who = (cell.strip() for cell in line.strip("|").split("|")[:2])
        documented[re.findall(r"`(\w+)`", kind)[0]] = set(re.findall(r"`(\w+)`", who))
    assert documented == {kind: {str(r) for r in roles} for kind, roles in RESOLVERS.items()}
    assert RESOLVERS["CLINICAL_MANUAL"] == frozenset({Role.PATHOLOGIST})
    assert "an admin/front desk (other fields)" not in text


def _client(http: httpx.AsyncClient, path: Path, email: str, lab: SyncLab | None) -> SyncClient:
    transport = Transport("", email=email, password=TEST_PASSWORD, http=http)
    branch = str(lab.cc1.id) if lab is not None else None
    return SyncClient(LocalStore(path), transport, branch_id=branch)
