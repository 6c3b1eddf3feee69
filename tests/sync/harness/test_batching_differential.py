"""Seeded randomised multi-device run, played twice: the outcome must not depend on batching.

A script (one seed) has four devices of two organisations do offline work on patients:
registrations, a registration and a clinical edit before the next sync (apart, or as one
transaction group), concurrent clinical (``pregnant``), identity (``full_name``) and
demographic (``city``, ``mobile``, ``email``) edits from stale copies, syncs at random moments,
pathologists who list the open clinical conflicts and decide them later from that (possibly
stale) view, and probes at the other organisation's records.

The same script runs twice, each time against fresh organisations: once with every op in its
own push over a clean line, once with random batch sizes over a faulty line (answers dropped
after the server committed, requests delivered twice, old requests delivered again). Checked:

* batching and lost answers change nothing: the same answer for every op, the same decisions,
  conflicts, field history and final records in both runs;
* no accepted write is lost: a demographic field ends at the accepted value with the latest
  clock and every other accepted value is in its field history; the clinical field ends at the
  last accepted change (an independent model replays the server's answers in order);
* no stale decision: deciding a conflict whose field changed after it opened is refused and
  changes nothing; otherwise the decision applies (the model predicts every answer);
* replays of recorded requests answer as the first time and change nothing;
* tenant isolation: the other organisation's records are never changed, pulled, listed or
  decided.

Device clocks are driven by the script (a logical millisecond per reading, and the devices do
not take the server's clock, which runs on real time), so both runs order every op alike and
no clock goes past the server's drift bound. Reproduce: ``pytest tests/sync/harness --seed N``.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from nidaan.kit.ids import new_id
from nidaan.patients.models import Patient
from nidaan.sync.client.engine import SyncClient
from nidaan.sync.client.errors import NetworkError
from nidaan.sync.client.model import LocalOp, OutboxOp
from nidaan.sync.client.store import LocalStore
from nidaan.sync.hlc import HLC, now_ms
from nidaan.sync.models import SyncChange, SyncConflict, SyncFieldHistory
from nidaan.sync.sealing import conflict_values, history_value
from tests.fixtures.objects import TEST_PASSWORD, create_branch, create_organisation, create_user
from tests.sync.harness.faults import FaultPlan, FaultyTransport, Recorder

STEPS = 80
PATIENTS = 4  # per organisation
_UUID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
CITIES = ("Pune", "Agra", "Nashik")
MOBILES = ("+919876543210", "+919123456780", "+919988776655")
EMAILS = ("a@example.com", "b@example.com")
NAMES = ("Asha Verma", "Asha Varma", "Aasha Verma")
POOLS = {"city": CITIES, "mobile": MOBILES, "email": EMAILS, "full_name": NAMES}
CLINICAL = "pregnant"
DEVICES = (
    ("d1", "one", "desk"),
    ("d2", "one", "desk2"),
    ("adm", "one", "admin"),
    ("e1", "two", "desk"),
)
# The other organisation's single desk acts less: it is there for isolation, not for conflicts.
DEVICE_WEIGHTS = {"d1": 3.0, "d2": 3.0, "adm": 2.0, "e1": 1.0}
LOOK = 'query { conflicts(status: "OPEN", entity: "patient") { id kind version } }'
DECIDE = """
mutation D($id: ID!, $resolution: Resolution!, $version: Int) {
  resolveConflict(conflictId: $id, resolution: $resolution, reason: "script",
                  expectedVersion: $version) { status }
}
"""


async def test_outcome_does_not_depend_on_batching_or_lost_answers(
    seed: int, live_client: httpx.AsyncClient, committing_session: Any, tmp_path: Path
) -> None:
    plain = await Run.play(seed, live_client, committing_session, tmp_path, faulty=False)
    faulty = await Run.play(seed, live_client, committing_session, tmp_path, faulty=True)
    for run in (plain, faulty):
        assert run.problems == [], f"seed {seed}, {run.label}: {run.problems[:5]}"
        await run.check_isolation()
    assert faulty.recorder.dropped + faulty.recorder.duplicated + faulty.recorder.replayed > 0
    assert not faulty.recorder.violations, faulty.recorder.violations[:5]
    first = _divergence(plain.trace, faulty.trace)
    assert first is None, (
        f"seed {seed}: the runs diverge at trace line {first}: "
        f"{plain.trace[first : first + 3]} != {faulty.trace[first : first + 3]}"
    )
    one, other = await plain.outcome(), await faulty.outcome()
    for part in one:
        only_one = [x for x in one[part] if x not in other[part]]
        only_other = [x for x in other[part] if x not in one[part]]
        assert one[part] == other[part], (
            f"seed {seed}: {part} differ: one op per push {only_one[:4]}, batched {only_other[:4]}"
        )
    await faulty.check_replays()
    assert plain.stale_refused + plain.decided > 0, "the script decided nothing"


def _divergence(one: list[str], other: list[str]) -> int | None:
    """The first line where two traces differ (None: identical)."""
    for index, (a, b) in enumerate(zip(one, other, strict=False)):
        if a != b:
            return index
    return None if len(one) == len(other) else min(len(one), len(other))


# -- the script's world ------------------------------------------------------------------------


@dataclass
class Org:
    id: str
    cc1: str
    emails: dict[str, str]  # "desk" | "desk2" | "admin" | "pathologist" -> e-mail


async def _organisation(committing_session: Any) -> Org:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        cc1 = await create_branch(session, organisation)
        emails = {}
        for name, role in (
            ("desk", "front_desk"),
            ("desk2", "front_desk"),
            ("admin", "admin"),
            ("pathologist", "pathologist"),
        ):
            branches = [cc1] if role == "front_desk" else []
            user = await create_user(session, organisation, roles=(role,), branches=branches)
            emails[name] = user.email
        return Org(str(organisation.id), str(cc1.id), emails)


class ScriptClock:
    """Milliseconds from the run's start, one more at every reading."""

    def __init__(self) -> None:
        self.now = now_ms()

    def __call__(self) -> int:
        self.now += 1
        return self.now


class ScriptedClient(SyncClient):
    """The reference client, except that it does not take the server's (real-time) clock."""

    def _observe_clock(self, *_: Any) -> None:
        return None


class OrderedRecorder(Recorder):
    """The harness recorder, also keeping the order in which the server first answered ops."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    def observe(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        known = set(self.observed)
        super().observe(*args, **kwargs)
        self.order.extend(op_id for op_id in self.observed if op_id not in known)


@dataclass
class Queued:
    device: str
    org: str
    op: OutboxOp
    patient: str  # symbol


@dataclass
class Conflict:
    symbol: str
    org: str
    patient: str
    client_value: Any
    server_value: Any
    status: str = "OPEN"
    resolution: str | None = None


@dataclass
class Device:
    name: str
    org: str
    client: SyncClient


@dataclass
class Run:
    label: str
    faulty: bool
    rng: random.Random  # the script's choices: the same in both runs
    chaos: random.Random  # batch sizes and faults: used by the faulty run only
    http: httpx.AsyncClient
    committing_session: Any
    orgs: dict[str, Org]
    recorder: OrderedRecorder
    devices: dict[str, Device] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # symbol -> id
    symbols: dict[str, str] = field(default_factory=dict)  # id -> symbol
    owner: dict[str, str] = field(default_factory=dict)  # patient symbol -> org
    queued: dict[str, Queued] = field(default_factory=dict)  # op id -> what was queued
    trace: list[str] = field(default_factory=list)
    # The model: the clinical field of each patient, and the conflicts on it.
    clinical: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, Conflict] = field(default_factory=dict)
    views: dict[str, int] = field(default_factory=dict)  # conflict symbol -> version at last look
    # Demographic candidates: (patient, field) -> [(clock key, value)] of accepted ops.
    candidates: dict[tuple[str, str], list[tuple[Any, Any]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # e-mail -> access token
    decided: int = 0
    stale_refused: int = 0

    @classmethod
    async def play(
        cls,
        seed: int,
        http: httpx.AsyncClient,
        committing_session: Any,
        folder: Path,
        *,
        faulty: bool,
    ) -> Run:
        orgs = {
            "one": await _organisation(committing_session),
            "two": await _organisation(committing_session),
        }
        run = cls(
            "faulty, batched" if faulty else "one op per push",
            faulty,
            random.Random(seed),
            random.Random(seed * 7919 + 3),
            http,
            committing_session,
            orgs,
            OrderedRecorder(),
        )
        plan = FaultPlan(run.chaos, enabled=faulty)
        clock = ScriptClock()
        for name, org, role in DEVICES:
            transport = FaultyTransport(
                "",
                email=orgs[org].emails[role],
                password=TEST_PASSWORD,
                http=http,
                device=name,
                plan=plan,
                recorder=run.recorder,
            )
            client = ScriptedClient(
                LocalStore(folder / f"{'faulty' if faulty else 'plain'}-{name}.sqlite"),
                transport,
                branch_id=orgs[org].cc1,
                physical=clock,
                correct_clock=False,
            )
            run.devices[name] = Device(name, org, client)
        actions = {
            run.register: 2.0,
            run.register_and_mark: 1.0,
            run.mark: 3.0,
            run.race: 2.0,
            run.overtake: 0.8,
            run.edit: 2.5,
            run.look: 1.5,
            run.decide: 2.5,
            run.probe: 0.4,
            run.sync: 4.0,
        }
        for _ in range(STEPS):
            action = run.rng.choices(list(actions), weights=list(actions.values()))[0]
            name = run.rng.choices(list(DEVICE_WEIGHTS), weights=list(DEVICE_WEIGHTS.values()))[0]
            await action(run.devices[name])
        plan.enabled = False  # the line is clean again: everyone drains and catches up
        for device in run.devices.values():
            await run.sync(device)
        await run.closing()
        for device in run.devices.values():
            await run.sync(device)
        return run

    # -- symbols: the script never depends on ids, which differ between runs ----------------

    def symbol(self, kind: str, real_id: str) -> str:
        if real_id not in self.symbols:
            name = f"{kind}{sum(1 for s in self.ids if s[0] == kind) + 1}"
            self.ids[name], self.symbols[real_id] = real_id, name
        return self.symbols[real_id]

    def known(self, device: Device) -> list[tuple[str, Any]]:
        rows = [(self.symbols.get(r.id), r) for r in device.client.rows("patient") if r.data]
        return sorted(((s, r) for s, r in rows if s is not None), key=lambda x: x[0])

    # -- local work ------------------------------------------------------------------------

    def queue(self, device: Device, ops: list[LocalOp]) -> None:
        for local, op in zip(ops, device.client.write(ops), strict=True):
            patient = self.symbols[local.entity_id]
            self.queued[op.op_id] = Queued(device.name, device.org, op, patient)
            data = _UUID.sub("<id>", json.dumps(local.data, sort_keys=True))
            self.trace.append(f"{device.name} queues {local.operation} {patient} {data}")

    def registration(self, device: Device) -> LocalOp:
        patient_id = str(new_id())
        self.owner[self.symbol("p", patient_id)] = device.org
        data = {
            "full_name": self.rng.choice(NAMES),
            "sex": "female",
            "age_years": 30,
            "registered_at_branch_id": self.orgs[device.org].cc1,
            "city": self.rng.choice(CITIES),
            "mobile": self.rng.choice(MOBILES),
            CLINICAL: self.rng.choice((None, False)),
        }
        return LocalOp("patient", "create", patient_id, data)

    def crowded(self, device: Device) -> bool:
        """A few patients per organisation, so devices keep meeting on the same records."""
        return sum(1 for org in self.owner.values() if org == device.org) >= PATIENTS

    async def register(self, device: Device) -> None:
        if self.crowded(device):
            return await self.mark(device)
        self.queue(device, [self.registration(device)])
        return None

    async def register_and_mark(self, device: Device) -> None:
        """Register and mark pregnant before any sync: apart, or as one form (tx group)."""
        if self.crowded(device):
            return await self.mark(device)
        create = self.registration(device)
        mark = LocalOp("patient", "update", create.entity_id, {CLINICAL: True})
        if self.rng.random() < 0.5:
            self.queue(device, [create, mark])
        else:
            self.queue(device, [create])
            self.queue(device, [mark])
        return None

    async def mark(self, device: Device) -> None:
        known = self.known(device)
        if known:
            _, row = self.rng.choice(known)
            value = self.rng.choice((True, False, None))
            self.queue(device, [LocalOp("patient", "update", row.id, {CLINICAL: value})])

    async def race(self, device: Device) -> None:
        """Two devices change the clinical field of a patient both hold, and sync one after
        the other: the second edited an older copy (a clinical conflict, unless its value is
        already there)."""
        others = [d for d in self.devices.values() if d.org == device.org and d is not device]
        if not others:
            return await self.mark(device)
        other = self.rng.choice(sorted(others, key=lambda d: d.name))
        mine = {s for s, r in self.known(device) if r.version is not None}
        shared = sorted(s for s, r in self.known(other) if r.version is not None and s in mine)
        if not shared:
            return await self.sync(device)
        target = self.ids[self.rng.choice(shared)]
        for writer in (other, device):
            value = self.rng.choice((True, False, None))
            self.queue(writer, [LocalOp("patient", "update", target, {CLINICAL: value})])
        await self.sync(other)
        await self.sync(device)
        return None

    async def overtake(self, device: Device) -> None:
        """A device syncs and changes the clinical field of a patient with a conflict someone
        has looked at: a decision taken from that look is now stale."""
        viewed = sorted(
            {self.conflicts[c].patient for c in self.views if self.conflicts[c].org == device.org}
        )
        await self.sync(device)
        held = {s for s, r in self.known(device) if r.version is not None}
        targets = [p for p in viewed if p in held]
        if not targets:
            return
        value = self.rng.choice((True, False, None))
        target = self.ids[self.rng.choice(targets)]
        self.queue(device, [LocalOp("patient", "update", target, {CLINICAL: value})])
        await self.sync(device)

    async def edit(self, device: Device) -> None:
        known = self.known(device)
        if known:
            _, row = self.rng.choice(known)
            names = self.rng.sample(sorted(POOLS), self.rng.randint(1, 2))
            changes = {name: self.rng.choice(POOLS[name]) for name in sorted(names)}
            self.queue(device, [LocalOp("patient", "update", row.id, changes)])

    async def probe(self, device: Device) -> None:
        """Edit one of the other organisation's patients by id (with a real base version)."""
        foreign = sorted(s for s, org in self.owner.items() if org != device.org)
        if foreign:
            target = self.ids[self.rng.choice(foreign)]
            self.queue(device, [LocalOp("patient", "update", target, {"city": "Agra"}, 1)])

    # -- syncing, and the model following the server's answers --------------------------------

    async def sync(self, device: Device) -> None:
        client = device.client
        client.max_batch_ops = self.chaos.randint(1, 6) if self.faulty else 1
        before = len(self.recorder.order)
        for _ in range(20):
            try:
                await client.sync()
                break
            except NetworkError:
                continue  # the answer was dropped after the server committed: send again
        else:
            raise AssertionError(f"{self.label}: {device.name} could not sync")
        for op_id in self.recorder.order[before:]:
            self.answered(op_id)

    def answered(self, op_id: str) -> None:
        queued = self.queued[op_id]
        op, patient = queued.op, queued.patient
        status, reason, conflict_ids = self.recorder.observed[op_id].first  # type: ignore[misc]
        shown = _UUID.sub("<id>", reason or "")
        opened = [self.symbol("c", c) for c in conflict_ids]
        self.trace.append(f"{queued.device} {op.operation} {patient}: {status} {shown} {opened}")
        if status not in ("APPLIED", "CONFLICT"):
            return
        if self.owner[patient] != queued.org:
            self.problems.append(f"{queued.device} changed {patient} of another organisation")
        clock = HLC.parse(op.hlc)
        key = (clock.wall_ms, clock.counter, self.devices[queued.device].client.client_id)
        for name in POOLS:
            if name in op.data:
                self.candidates.setdefault((patient, name), []).append((key, op.data[name]))
        if op.operation == "create":
            self.clinical[patient] = op.data.get(CLINICAL)
        elif CLINICAL in op.data and status == "APPLIED":
            self.change_clinical(patient, op.data[CLINICAL])
        for symbol in opened:
            if symbol not in self.conflicts and CLINICAL in op.data:
                self.conflicts[symbol] = Conflict(
                    symbol, queued.org, patient, op.data[CLINICAL], self.clinical[patient]
                )

    def change_clinical(self, patient: str, value: Any) -> None:
        """The clinical field takes a new value: open conflicts on it are superseded."""
        if self.clinical.get(patient) == value:
            return
        self.clinical[patient] = value
        for conflict in self.conflicts.values():
            if conflict.patient == patient and conflict.status == "OPEN":
                conflict.status = "SUPERSEDED"

    # -- the pathologists --------------------------------------------------------------------

    async def look(self, device: Device) -> None:
        body = await self.as_user(self.orgs[device.org].emails["pathologist"], LOOK, {})
        listed = []
        for conflict in body["data"]["conflicts"]:
            symbol = self.symbols.get(conflict["id"])
            if symbol not in self.conflicts or self.conflicts[symbol].org != device.org:
                self.problems.append(f"{device.org}'s pathologist listed {conflict['id']}")
                continue
            self.views[symbol] = conflict["version"]
            listed.append(symbol)
        expected = sorted(
            c.symbol for c in self.conflicts.values() if c.org == device.org and c.status == "OPEN"
        )
        if sorted(listed) != expected:
            self.problems.append(
                f"open clinical conflicts listed {sorted(listed)}, model {expected}"
            )
        self.trace.append(f"look {device.org}: {sorted(listed)}")

    async def decide(self, device: Device) -> None:
        """Decide a conflict seen at the last look, however long ago that was; sometimes try
        one of the other organisation's."""
        if self.rng.random() < 0.4:
            await self.look(device)  # a fresh look; otherwise the last one, however old
        seen = sorted(s for s in self.views if self.conflicts[s].org == device.org)
        foreign = sorted(s for s in self.views if self.conflicts[s].org != device.org)
        if foreign and self.rng.random() < 0.15:
            answer = await self.as_user(
                self.orgs[device.org].emails["pathologist"],
                DECIDE,
                {"id": self.ids[self.rng.choice(foreign)], "resolution": "TAKE_CLIENT"},
            )
            code = answer["errors"][0]["extensions"]["code"] if answer.get("errors") else "decided"
            if code != "not_found":
                self.problems.append(
                    f"{device.org} decided another organisation's conflict: {code}"
                )
            return
        if not seen:
            return
        conflict = self.conflicts[self.rng.choice(seen)]
        resolution = self.rng.choice(("KEEP_SERVER", "TAKE_CLIENT"))
        version = self.views[conflict.symbol] if self.rng.random() < 0.5 else None
        await self.decide_conflict(device, conflict, resolution, version)

    async def decide_conflict(
        self, device: Device, conflict: Conflict, resolution: str, version: int | None
    ) -> None:
        """Decide as the organisation's pathologist; the model predicts the answer and value."""
        before = await self.server_clinical(conflict.patient)
        answer = await self.as_user(
            self.orgs[device.org].emails["pathologist"],
            DECIDE,
            {"id": self.ids[conflict.symbol], "resolution": resolution, "version": version},
        )
        got = (
            answer["errors"][0]["extensions"]["code"]
            if answer.get("errors")
            else answer["data"]["resolveConflict"]["status"]
        )
        target = conflict.server_value if resolution == "KEEP_SERVER" else conflict.client_value
        if conflict.status == "SUPERSEDED":
            expected = "conflict_superseded"
            self.stale_refused += 1
        elif conflict.status == "RESOLVED":
            expected = (
                "RESOLVED" if conflict.resolution == resolution else "conflict_already_resolved"
            )
        else:
            expected = "RESOLVED"
            conflict.status, conflict.resolution = "RESOLVED", resolution
            self.decided += 1
            self.change_clinical(conflict.patient, target)
        after = await self.server_clinical(conflict.patient)
        self.trace.append(f"decide {conflict.symbol} {resolution}: {got}")
        if got != expected or after != self.clinical[conflict.patient]:
            self.problems.append(
                f"deciding {conflict.symbol} ({conflict.status}) {resolution}: {got}, expected "
                f"{expected}; {CLINICAL} {before} -> {after}, "
                f"model {self.clinical[conflict.patient]}"
            )

    async def closing(self) -> None:
        """Every conflict a pathologist has seen is decided once more: open ones apply, the
        superseded ones (decided from a stale look) are refused."""
        for device in (self.devices["adm"], self.devices["e1"]):
            stale = sorted(s for s in self.views if self.conflicts[s].org == device.org)
            await self.look(device)
            for symbol in sorted(set(stale) | set(self.views)):
                conflict = self.conflicts[symbol]
                if conflict.org == device.org:
                    resolution = self.rng.choice(("KEEP_SERVER", "TAKE_CLIENT"))
                    await self.decide_conflict(device, conflict, resolution, None)

    async def server_clinical(self, patient: str) -> Any:
        async with self.committing_session() as session:
            row = await session.get(Patient, self.ids[patient])
            assert row is not None
            return getattr(row, CLINICAL)

    async def as_user(self, email: str, query: str, variables: dict[str, Any]) -> Any:
        if email not in self.tokens:
            token = await self.http.post(
                "/api/v1/auth/token", data={"username": email, "password": TEST_PASSWORD}
            )
            self.tokens[email] = token.json()["access_token"]
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.tokens[email]}"},
        )
        return response.json()

    # -- after the run -----------------------------------------------------------------------

    async def outcome(self) -> dict[str, Any]:
        """The records, conflicts and field history, by symbol; checks the model against it."""
        async with self.committing_session() as session:
            patients = {
                self.symbols[str(p.id)]: {name: getattr(p, name) for name in (*POOLS, CLINICAL)}
                for p in await session.scalars(
                    select(Patient).where(Patient.id.in_([self.ids[s] for s in self.owner]))
                )
            }
            conflicts = sorted(
                (
                    self.op_symbol(c),
                    self.symbols[str(c.entity_id)],
                    c.field,
                    c.kind,
                    c.status,
                    c.resolution,
                    json.dumps(conflict_values(c), sort_keys=True),
                )
                for c in await session.scalars(
                    select(SyncConflict).where(
                        SyncConflict.organisation_id.in_([o.id for o in self.orgs.values()])
                    )
                )
            )
            history = Counter(
                (self.symbols[str(h.entity_id)], h.field, h.outcome, json.dumps(history_value(h)))
                for h in await session.scalars(
                    select(SyncFieldHistory).where(
                        SyncFieldHistory.organisation_id.in_([o.id for o in self.orgs.values()])
                    )
                )
            )
        self.check_model(patients, history)
        return {"patients": patients, "conflicts": conflicts, "history": history}

    def op_symbol(self, conflict: SyncConflict) -> str:
        queued = self.queued[str(conflict.op_id)]
        return f"{queued.device}:{queued.op.client_seq}"

    def check_model(self, patients: dict[str, dict[str, Any]], history: Counter[Any]) -> None:
        for patient, value in self.clinical.items():
            if patients[patient][CLINICAL] != value:
                self.problems.append(
                    f"{patient}.{CLINICAL} is {patients[patient][CLINICAL]}, "
                    f"the last accepted change {value}"
                )
        kept: dict[tuple[str, str], set[str]] = {}
        for patient, name, _, value in history:
            kept.setdefault((patient, name), set()).add(value)
        for (patient, name), candidates in self.candidates.items():
            winner = max(candidates, key=lambda c: c[0])[1]
            final = patients[patient][name]
            if final != winner:
                self.problems.append(
                    f"{patient}.{name} is {final!r}, the latest accepted {winner!r}"
                )
            for _, value in candidates:
                if value != final and json.dumps(value) not in kept.get((patient, name), set()):
                    self.problems.append(
                        f"{patient}.{name}: accepted {value!r} lost without history"
                    )
        assert self.problems == [], f"{self.label}: {self.problems[:5]}"

    async def check_isolation(self) -> None:
        """No device pulled, and no device's op changed, a record of the other organisation."""
        for device in self.devices.values():
            for row in device.client.rows("patient", include_deleted=True):
                symbol = self.symbols.get(row.id)
                assert symbol is None or self.owner[symbol] == device.org or row.version is None, (
                    f"{device.name} holds {symbol} of another organisation"
                )
        async with self.committing_session() as session:
            for device in self.devices.values():
                other = [o.id for key, o in self.orgs.items() if key != device.org]
                touched = await session.scalars(
                    select(SyncChange.entity_id).where(
                        SyncChange.organisation_id.in_(other),
                        SyncChange.origin_client_id == device.client.client_id,
                    )
                )
                assert list(touched) == [], f"{device.name} changed another organisation's rows"

    async def check_replays(self) -> None:
        """Recorded requests sent again answer as the first time and change nothing."""
        before = await self.counts()
        deliveries = [d for d in self.recorder.deliveries if d.results]
        self.chaos.shuffle(deliveries)
        for delivery in deliveries[:10]:
            for _ in range(self.chaos.randint(1, 3)):
                response = await self.http.post(
                    "/graphql", headers=delivery.headers, content=delivery.content
                )
                answer = response.json()["data"]["syncPendingOperations"]
                for result in answer["results"]:
                    first = delivery.results.get(result["opId"])
                    if first is not None:
                        assert (result["status"], result["reason"]) == first[:2], result
        assert await self.counts() == before, "a replay changed the server's state"

    async def counts(self) -> tuple[Any, ...]:
        async with self.committing_session() as session:
            orgs = [o.id for o in self.orgs.values()]
            return tuple(
                [
                    len(
                        list(
                            await session.scalars(
                                select(model).where(model.organisation_id.in_(orgs))
                            )
                        )
                    )
                    for model in (SyncChange, SyncConflict, SyncFieldHistory, Patient)
                ]
            )
