"""The properties of spec §4, checked against the server's tables and an independent oracle
built from the ops the harness queued and the answers it saw (never from the server's merge
metadata)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import text

from nidaan.sync.client.engine import SyncClient
from nidaan.sync.client.errors import PermanentError
from nidaan.sync.client.store import LocalStore
from nidaan.sync.client.transport import Transport
from nidaan.sync.hlc import HLC
from nidaan.sync.models import SyncFieldHistory
from nidaan.sync.sealing import history_value
from tests.fixtures.objects import TEST_PASSWORD
from tests.sync.harness.sim import Device, OpRecord, Simulation

ENTITIES = ("patient", "order", "sample", "payment", "result", "conflict")
DRIFT_MS = 600_000


# -- database helpers ----------------------------------------------------------------------


async def rows(committing_session: Any, sql: str, **params: Any) -> list[Any]:
    async with committing_session() as session:
        return list((await session.execute(text(sql), params)).all())


async def scalar(committing_session: Any, sql: str, **params: Any) -> Any:
    async with committing_session() as session:
        return (await session.execute(text(sql), params)).scalar()


# -- 6. ordering: a tailing reader under concurrent writers ----------------------------------


@dataclass
class Tailer:
    """Reads the organisation's change log by ``seq`` while devices write; a seq must never
    appear below (or in a hole before) one it has already read."""

    conninfo: str
    organisation_id: str
    seen: int = 0
    reads: int = 0
    violations: list[str] | None = None
    stop: bool = False

    async def run(self) -> None:
        self.violations = []
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            while not self.stop:
                await self._read(conn)
                await asyncio.sleep(0.005)
            await self._read(conn)

    async def _read(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cursor = await conn.execute(
            "SELECT seq FROM sync_change_log WHERE organisation_id = %s AND seq > %s ORDER BY seq",
            (self.organisation_id, self.seen),
        )
        seqs = [r[0] for r in await cursor.fetchall()]
        self.reads += 1
        assert self.violations is not None
        if seqs and seqs != list(range(self.seen + 1, self.seen + 1 + len(seqs))):
            self.violations.append(f"after seq {self.seen} the reader saw {seqs[:10]}")
        if seqs:
            self.seen = seqs[-1]
        below = await conn.execute(
            "SELECT count(*) FROM sync_change_log WHERE organisation_id = %s AND seq <= %s",
            (self.organisation_id, self.seen),
        )
        # Compaction is not running during the rounds, so nothing below may appear or vanish.
        (count,) = await below.fetchone()  # type: ignore[misc]
        if count != self.seen:
            self.violations.append(f"{count} rows at or below seq {self.seen}")


async def check_contiguous(sim: Simulation, committing_session: Any) -> int:
    seqs = [
        r[0]
        for r in await rows(
            committing_session,
            "SELECT seq FROM sync_change_log WHERE organisation_id = :org ORDER BY seq",
            org=sim.world.organisation_id,
        )
    ]
    head = await scalar(
        committing_session,
        "SELECT head_seq FROM sync_tenant_state WHERE organisation_id = :org",
        org=sim.world.organisation_id,
    )
    assert seqs == list(range(1, head + 1)), f"change log seqs have holes (head {head})"
    return int(head)


# -- 1. convergence ----------------------------------------------------------------------------


DERIVED: dict[str, tuple[str, ...]] = {}


def local_state(client: SyncClient) -> dict[tuple[str, str], tuple[int | None, str]]:
    state: dict[tuple[str, str], tuple[int | None, str]] = {}
    for entity in ENTITIES:
        for row in client.rows(entity):
            assert row.pending == 0, f"{entity} {row.id} still has pending ops"
            data = {k: v for k, v in row.data.items() if k not in DERIVED.get(entity, ())}
            state[(entity, row.id)] = (row.version, json.dumps(data, sort_keys=True))
    return state


async def check_convergence(
    sim: Simulation, http: httpx.AsyncClient, folder: Path, label: str
) -> int:
    """Each device's synced rows equal a fresh pull by the same user and branch."""
    compared = 0
    for device in sim.devices.values():
        assert device.client.pending() == [], f"{device.name}: outbox not empty"
        transport = Transport(
            "", email=sim.world.emails[device.name], password=TEST_PASSWORD, http=http
        )
        fresh = SyncClient(
            LocalStore(folder / f"fresh-{label}-{device.name}.sqlite"),
            transport,
            branch_id=device.branch_id,
        )
        await fresh.sync()
        mine, theirs = local_state(device.client), local_state(fresh)
        if mine != theirs:
            only_mine = sorted(set(mine) - set(theirs))[:5]
            only_theirs = sorted(set(theirs) - set(mine))[:5]
            differ = [k for k in set(mine) & set(theirs) if mine[k] != theirs[k]][:3]
            raise AssertionError(
                f"{label}: {device.name} diverged: only local {only_mine}, only server "
                f"{only_theirs}, different {[(k, mine[k], theirs[k]) for k in differ]}"
            )
        compared += len(mine)
    return compared


# -- 2/3. terminal results, idempotency, rejected visibility ----------------------------------


async def check_results(sim: Simulation, committing_session: Any) -> dict[str, int]:
    assert not sim.recorder.violations, sim.recorder.violations[:5]
    counts: dict[str, int] = defaultdict(int)
    failed = {
        name: {f.op.op_id: f.reason for f in d.client.failed()} for name, d in sim.devices.items()
    }
    for op_id, record in sim.ops.items():
        seen = sim.recorder.observed.get(op_id)
        assert seen is not None, f"op {op_id} was never answered"
        assert seen.first is not None, f"op {op_id} has no terminal result"
        status = seen.first[0]
        counts[status] += 1
        in_failed = op_id in failed[record.device]
        assert in_failed == (status == "REJECTED"), (
            f"op {op_id} {status}: in {record.device}'s failed list = {in_failed}"
        )
        if record.expect_rejected:
            assert status == "REJECTED", f"forbidden op {record.op.entity} {record.data} {status}"
        if record.kind == "own_guarded" and _created(sim, record.op.entity_id):
            # Its own registration, in the same push or an earlier one (issue 10).
            assert status == "APPLIED", f"clinical edit of an own new row: {status} {seen.first}"
    applied = await rows(
        committing_session,
        "SELECT op_id::text, count(*) FROM sync_applied_ops WHERE organisation_id = :org "
        "GROUP BY op_id",
        org=sim.world.organisation_id,
    )
    per_op = dict(applied)
    assert all(n == 1 for n in per_op.values()), "an op has more than one applied_op row"
    assert set(per_op) == set(sim.ops), (
        f"applied ops {len(per_op)} vs queued {len(sim.ops)}: missing "
        f"{sorted(set(sim.ops) - set(per_op))[:3]}"
    )
    # 9. Rejected ops leave no change behind.
    rejected = [op_id for op_id in sim.ops if counts and _status(sim, op_id) == "REJECTED"]
    leaked = await scalar(
        committing_session,
        "SELECT count(*) FROM sync_change_log WHERE organisation_id = :org "
        "AND op_id::text = ANY(:ids)",
        org=sim.world.organisation_id,
        ids=rejected,
    )
    assert leaked == 0, f"{leaked} change(s) from rejected ops reached the change log"
    return dict(counts)


def _created(sim: Simulation, entity_id: str) -> bool:
    return any(
        r.op.entity_id == entity_id and r.op.operation == "create" and _status(sim, o) == "APPLIED"
        for o, r in sim.ops.items()
    )


def _status(sim: Simulation, op_id: str) -> str:
    seen = sim.recorder.observed[op_id]
    assert seen.first is not None
    return str(seen.first[0])


async def check_replay(sim: Simulation, committing_session: Any, http: httpx.AsyncClient) -> int:
    """Re-send recorded batches 1-5 times: same answers, no new rows, no new changes."""
    org = sim.world.organisation_id

    async def counts() -> tuple[Any, ...]:
        return tuple(
            (
                await rows(
                    committing_session,
                    "SELECT (SELECT head_seq FROM sync_tenant_state WHERE organisation_id = :org),"
                    " (SELECT count(*) FROM sync_change_log WHERE organisation_id = :org),"
                    " (SELECT count(*) FROM sync_applied_ops WHERE organisation_id = :org),"
                    " (SELECT count(*) FROM sync_conflicts WHERE organisation_id = :org)",
                    org=org,
                )
            )[0]
        )

    before = await counts()
    batches = [d for d in sim.recorder.deliveries if d.results]
    sim.rng.shuffle(batches)
    replays = 0
    for delivery in batches[:8]:
        for _ in range(sim.rng.randint(1, 5)):
            response = await http.post(
                "/graphql", headers=delivery.headers, content=delivery.content
            )
            answer = response.json()["data"]["syncPendingOperations"]
            got = {
                r["opId"]: (r["status"], r.get("reason"), tuple(r.get("conflictIds") or ()))
                for r in answer["results"]
            }
            for op_id, first in delivery.results.items():
                assert got[op_id][:2] == first[:2], f"replayed op {op_id}: {got[op_id]} != {first}"
            replays += 1
    assert await counts() == before, "a replay changed server state"
    return replays


# -- 3. no lost writes: the LWW oracle ----------------------------------------------------------

LWW_FIELDS = {
    "patient": ("city", "email", "pincode", "mobile", "full_name", "date_of_birth"),
    "order": ("priority", "referring_doctor"),
}


def _key_interval(sim: Simulation, record: OpRecord) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The (HLC, clientId) the server merges with: the op's own, or — when its clock was more
    than the drift bound ahead — server time somewhere inside the delivery that applied it."""
    hlc = HLC.parse(record.op.hlc)
    client_id = sim.devices[record.device].client.client_id
    seen = sim.recorder.observed[record.op.op_id]
    assert seen is not None
    assert seen.window is not None
    started, ended = seen.window
    if hlc.wall_ms > ended + DRIFT_MS:
        return (started, 0, client_id), (ended, 0, client_id)
    assert hlc.wall_ms <= started + DRIFT_MS + 60_000, "a far-future HLC was not clamped"
    exact = (hlc.wall_ms, hlc.counter, client_id)
    return exact, exact


def _norm(field: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if field == "mobile":
        return str(value)[-10:]
    if field == "email":
        return str(value).lower()
    return str(value).strip()


async def check_lww(sim: Simulation, committing_session: Any) -> tuple[int, int]:
    candidates: dict[tuple[str, str, str], list[tuple[Any, Any, Any]]] = defaultdict(list)
    for op_id, record in sim.ops.items():
        op = record.op
        if op.entity not in LWW_FIELDS:
            continue
        status = _status(sim, op_id)
        if op.operation == "create" and status == "APPLIED":
            fields = LWW_FIELDS[op.entity]
        elif op.operation == "update" and status in ("APPLIED", "CONFLICT"):
            fields = tuple(f for f in record.data if f in LWW_FIELDS[op.entity])
        else:
            continue
        lo, hi = _key_interval(sim, record)
        for name in fields:
            candidates[(op.entity, op.entity_id, name)].append((lo, hi, record.data.get(name)))
    stored: dict[tuple[str, str, str], Any] = {}
    from sqlalchemy import select

    from nidaan.patients.models import Patient

    async with committing_session() as session:
        # The ORM, not SQL: the mobile number is stored encrypted.
        patients = await session.scalars(
            select(Patient).where(Patient.organisation_id == sim.world.organisation_id)
        )
        for patient in patients:
            for name in LWW_FIELDS["patient"]:
                value = getattr(patient, name)
                stored[("patient", str(patient.id), name)] = (
                    value.isoformat() if hasattr(value, "isoformat") else value
                )
    for r in await rows(
        committing_session,
        "SELECT id::text, priority, referring_doctor FROM orders WHERE organisation_id = :org",
        org=sim.world.organisation_id,
    ):
        stored[("order", r[0], "priority")] = r[1]
        stored[("order", r[0], "referring_doctor")] = r[2]
    # Every accepted value that is not the final one is kept in field history (spec §4.7):
    # as "lost" when it arrived older, or "overwritten" when a newer one replaced it.
    history: dict[tuple[str, str, str], set[Any]] = defaultdict(set)
    async with committing_session() as session:
        # The ORM and sealing: a mobile number's history is stored encrypted.
        kept = await session.scalars(
            select(SyncFieldHistory).where(
                SyncFieldHistory.organisation_id == sim.world.organisation_id
            )
        )
        for r in kept:
            key = (r.entity, str(r.entity_id), r.field)
            history[key].add(_norm(r.field, history_value(r)))
    updated = {
        (record.op.entity, record.op.entity_id, name): record
        for record in sim.ops.values()
        if record.op.operation == "update"
        for name in record.data
    }
    losers = 0
    for key, cands in candidates.items():
        if key not in stored or key not in updated:
            continue
        final = _norm(key[2], stored[key])
        for value in {_norm(key[2], c[2]) for c in cands} - {final}:
            losers += 1
            assert value in history[key], (
                f"LWW {key}: value {value!r} lost without a field history row "
                f"(history: {sorted(map(str, history[key]))}, final {final!r})"
            )
    ambiguous = 0
    for key, cands in candidates.items():
        if key not in stored:
            continue
        # Possible winners: no other candidate is surely later.
        winners = [c for c in cands if all(c[1] >= d[0] for d in cands if d is not c)]
        if len(winners) > 1:
            ambiguous += 1
        expected = {_norm(key[2], c[2]) for c in winners}
        actual = _norm(key[2], stored[key])
        assert actual in expected, (
            f"LWW {key}: server has {actual!r}, the oracle's winner is {expected} "
            f"(candidates by key: {sorted((c[0], c[2]) for c in cands)})"
        )
    return len(candidates), ambiguous


# -- 3. appends -------------------------------------------------------------------------------


async def check_appends(sim: Simulation, committing_session: Any) -> int:
    org = sim.world.organisation_id
    expected: dict[str, set[str]] = defaultdict(set)
    for op_id, record in sim.ops.items():
        if record.op.operation in ("create", "append") and _status(sim, op_id) == "APPLIED":
            expected[record.op.entity].add(record.op.entity_id)
    tables = {"patient": "patients", "order": "orders", "payment": "counter_payments"}
    for entity, table in tables.items():
        found = {
            r[0]
            for r in await rows(
                committing_session,
                f"SELECT id::text FROM {table} WHERE organisation_id = :org",
                org=org,
            )
        }
        assert found == expected[entity], f"{entity}: server rows != accepted appends"
    results = {
        r[0]
        for r in await rows(
            committing_session,
            "SELECT id::text FROM results WHERE organisation_id = :org",
            org=org,
        )
    }
    assert expected["result"] <= results, "an accepted result append is missing"
    return sum(len(v) for v in expected.values())


# -- 5. conflicts ---------------------------------------------------------------------------------


async def check_conflicts(sim: Simulation, committing_session: Any) -> int:
    org = sim.world.organisation_id
    stored = await rows(
        committing_session,
        "SELECT id::text, op_id::text, field, kind, client_value FROM sync_conflicts "
        "WHERE organisation_id = :org",
        org=org,
    )
    by_op: dict[str, list[Any]] = defaultdict(list)
    for row in stored:
        by_op[row[1]].append(row)
    for op_id, record in sim.ops.items():
        seen = sim.recorder.observed[op_id]
        assert seen.first is not None
        ids = set(seen.first[2])
        mine = by_op.get(op_id, [])
        assert {r[0] for r in mine} == ids, f"op {op_id}: conflicts {mine} vs answered {ids}"
        fields = [r[2] for r in mine]
        assert len(fields) == len(set(fields)), f"op {op_id}: two conflicts for one field"
        if record.kind == "guarded" and seen.first[0] == "CONFLICT":
            assert [r[3] for r in mine] == ["CLINICAL_MANUAL"], mine
    # No GUARDED value changes without a version match: from one base version, at most one
    # distinct value is applied.
    # (One device editing its own pending value twice from one base is not concurrent.)
    applied: dict[tuple[str, str, str, Any], set[tuple[str, str]]] = defaultdict(set)
    for op_id, record in sim.ops.items():
        first = sim.recorder.observed[op_id].first
        # An APPLIED "no change" found the value already there: nothing was written.
        changed = first is not None and not str(first[1] or "").startswith("no change")
        if record.kind == "guarded" and _status(sim, op_id) == "APPLIED" and changed:
            for name, value in record.data.items():
                key = (record.op.entity, record.op.entity_id, name, record.op.base_version)
                applied[key].add((record.device, json.dumps(value)))
    doubled = {
        k: v
        for k, v in applied.items()
        if len({d for d, _ in v}) > 1 and len({value for _, value in v}) > 1
    }
    assert not doubled, f"two guarded values applied from one base version: {doubled}"
    # Each eligible device holds each conflict in its scope exactly once (a row keyed by id).
    return len(stored)


async def check_verified(sim: Simulation, committing_session: Any) -> int:
    """7. Verified results never change; later sync edits of them are REJECTED."""
    if not sim.verified:
        return 0
    found = {
        r[0]: (r[1], r[2])
        for r in await rows(
            committing_session,
            "SELECT id::text, entered_value, status FROM results WHERE id::text = ANY(:ids)",
            ids=list(sim.verified),
        )
    }
    # Its value is pinned by the ops: every sync edit that arrived after verification is REJECTED.
    for result_id in sim.verified:
        assert found[result_id][1] == "verified", f"result {result_id} is {found[result_id]}"
    attempts = 0
    for op_id, record in sim.ops.items():
        if record.op.entity != "result" or record.op.operation != "update":
            continue
        verified = sim.verified.get(record.op.entity_id)
        seen = sim.recorder.observed[op_id]
        assert seen.window is not None
        if verified is not None and seen.window[0] > verified[1]:
            attempts += 1
            assert _status(sim, op_id) == "REJECTED", f"edit of verified {record.op.entity_id}"
    return attempts


async def resolve_all(sim: Simulation, committing_session: Any) -> tuple[int, int]:
    """Resolve every open conflict once (pathologist: clinical, admin: identity review), check
    that each resolution makes its change and no new conflict, and that repeating it is a
    no-op. A desk user may not resolve a clinical conflict."""
    org = sim.world.organisation_id
    open_rows = await rows(
        committing_session,
        "SELECT id::text, kind FROM sync_conflicts WHERE organisation_id = :org "
        "AND status = 'OPEN' ORDER BY created_at",
        org=org,
    )
    head_sql = "SELECT head_seq FROM sync_tenant_state WHERE organisation_id = :org"
    count_sql = "SELECT count(*) FROM sync_conflicts WHERE organisation_id = :org"
    # Conflicts on the same field as conflict :field_key that its resolution superseded.
    superseded_sql = (
        "SELECT count(*) FROM sync_conflicts s JOIN sync_conflicts r "
        "ON (s.entity, s.entity_id, s.field) = (r.entity, r.entity_id, r.field) "
        "WHERE r.id = CAST(:field_key AS uuid) AND s.organisation_id = :org "
        "AND s.status = 'SUPERSEDED' AND s.resolved_at >= r.resolved_at"
    )
    refused = 0
    for conflict_id, kind in open_rows[:12]:
        resolver = sim.devices["path" if kind == "CLINICAL_MANUAL" else "admin"]
        if kind == "CLINICAL_MANUAL" and not refused:
            try:
                await sim.devices["desk1a"].client.resolve_conflict(
                    conflict_id, "TAKE_CLIENT", "not mine to decide"
                )
            except PermanentError:
                refused += 1
            else:
                raise AssertionError("a front desk resolved a CLINICAL_MANUAL conflict")
        resolution = sim.rng.choice(("KEEP_SERVER", "TAKE_CLIENT"))
        head, conflicts = (
            await scalar(committing_session, head_sql, org=org),
            await scalar(committing_session, count_sql, org=org),
        )
        try:
            first = await resolver.client.resolve_conflict(
                conflict_id, resolution, "harness review"
            )
        except PermanentError:
            # e.g. the result was verified meanwhile: refused, and nothing may have changed.
            assert await scalar(committing_session, head_sql, org=org) == head
            continue
        after = await scalar(committing_session, head_sql, org=org)
        # The conflict row itself always changes; the field changes when the values differ,
        # and then other open conflicts on that field are superseded (each a change too).
        # Only changes of the conflict's record and of conflicts are the resolution's: the
        # server's background jobs may commit other records' changes in the same window.
        siblings = await scalar(committing_session, superseded_sql, org=org, field_key=conflict_id)
        changes = await _resolution_changes(committing_session, org, conflict_id, head, after)
        made = len(changes) - siblings
        assert 1 <= made <= 2, f"resolving {conflict_id} made {len(changes)} changes: {changes}"
        assert await scalar(committing_session, count_sql, org=org) == conflicts
        again = await resolver.client.resolve_conflict(conflict_id, resolution, "harness review")
        assert again["status"] == first["status"] == "RESOLVED"
        latest = await scalar(committing_session, head_sql, org=org)
        repeated = await _resolution_changes(committing_session, org, conflict_id, after, latest)
        assert not repeated, f"repeat resolve changed {repeated}"
    return len(open_rows[:12]), refused


async def check_clock_flags(sim: Simulation) -> None:
    for device in sim.devices.values():
        status = await device.client.server_status()
        # Flagged when an op arrived with a clock beyond the drift bound. A fast device whose
        # clock was corrected (at its first sync) before it queued anything never sends one.
        wrote = any(
            r.device == device.name
            and (seen := sim.recorder.observed[op_id]).window is not None
            and HLC.parse(r.op.hlc).wall_ms > seen.window[1] + DRIFT_MS
            for op_id, r in sim.ops.items()
        )
        if wrote:
            assert status["clockSuspect"], f"{device.name} (+1 day) is not flagged"
        if device.spec.skew_ms <= DRIFT_MS:
            assert not status["clockSuspect"], f"{device.name} flagged without cause"


def check_schema_window(sim: Simulation) -> int:
    """11. Ops queued under schema 1 (``name``/``phone``) were accepted after the bump."""
    old = [
        r
        for r in sim.ops.values()
        if r.op.schema_version == 1 and r.op.entity == "patient" and r.op.operation != "delete"
    ]
    assert sim.schema_bumped
    late = [r for r in old if sim.recorder.observed[r.op.op_id].first is not None]
    applied = [r for r in late if _status(sim, r.op.op_id) in ("APPLIED", "CONFLICT")]
    assert applied, "no schema-1 op was applied"
    return len(applied)


async def device_for(sim: Simulation, name: str) -> Device:
    return sim.devices[name]


async def _resolution_changes(
    committing_session: Any, org: Any, conflict_id: str, after_seq: int, up_to_seq: int
) -> list[tuple[str, str]]:
    """Change-log entries in (after_seq, up_to_seq] that a resolution of ``conflict_id`` can
    make: its record's and conflicts'."""
    found = await rows(
        committing_session,
        "SELECT l.entity, l.entity_id::text FROM sync_change_log l, sync_conflicts c "
        "WHERE l.organisation_id = :org AND c.id = CAST(:conflict AS uuid) "
        "AND l.seq > :after AND l.seq <= :upto "
        "AND (l.entity = 'conflict' OR (l.entity = c.entity AND l.entity_id = c.entity_id)) "
        "ORDER BY l.seq",
        org=org,
        conflict=conflict_id,
        after=after_seq,
        upto=up_to_seq,
    )
    return [(entity, entity_id) for entity, entity_id in found]
