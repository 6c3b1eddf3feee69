"""Simulated devices: each is the reference ``SyncClient`` with its own SQLite file, user,
branch, clock and faulty transport. The simulation picks random operations from what each
device sees locally, keeps every op it queued (the oracle's input) and runs sync rounds with
random offline windows."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from nidaan.sync.client.engine import SyncClient
from nidaan.sync.client.errors import RetryableError
from nidaan.sync.client.model import LocalOp, OutboxOp
from nidaan.sync.client.store import LocalStore
from nidaan.sync.hlc import now_ms
from tests.fixtures.objects import TEST_PASSWORD
from tests.sync.harness.faults import FaultPlan, FaultyTransport, Recorder
from tests.sync.harness.world import DEVICES, DeviceSpec, World

# Small value pools on purpose: equal values and collisions are where merge rules go wrong.
CITIES = ("Pune", "Agra", "Nashik", "Surat")
EMAILS = ("a@example.com", "b@example.com", "c@example.com")
PINCODES = ("411001", "282001", "422001")
MOBILES = ("9876543210", "9123456780", "9988776655")
NAMES = ("Asha Verma", "Ravi Kumar", "Meena Rao", "Imran Shaikh")
BIRTHDAYS = ("1980-01-02", "1991-07-15", "2001-11-30")
DOCTORS = ("Dr Rao", "Dr Sen", None)
NOTES = ("fasting", "on warfarin", "diabetic", "post-op")
PRIORITIES = ("routine", "urgent", "stat")

PATIENT_LWW = ("city", "email", "pincode", "mobile")
PATIENT_IDENTITY = ("full_name", "date_of_birth")
V1_NAMES = {"full_name": "name", "mobile": "phone"}  # schema 1 spelling (sync/protocol.py)


@dataclass
class OpRecord:
    """An op as the harness queued it (data in schema-2 spelling), plus what it was for."""

    op: OutboxOp
    device: str
    # lww | identity | guarded | own_guarded (a clinical edit of the device's own new row) |
    # create | append | state | delete | probe
    kind: str
    data: dict[str, Any]  # schema-2 field names
    expect_rejected: bool = False
    queued_at: int = field(default_factory=now_ms)


@dataclass
class Device:
    spec: DeviceSpec
    client: SyncClient
    transport: FaultyTransport
    branch_id: str | None
    offline_until: int = 0
    syncs: int = 0
    errors: int = 0
    resets: int = 0

    @property
    def name(self) -> str:
        return self.spec.name


def make_device(
    spec: DeviceSpec,
    world: World,
    http: httpx.AsyncClient,
    folder: Path,
    plan: FaultPlan,
    recorder: Recorder,
) -> Device:
    transport = FaultyTransport(
        "",
        email=world.emails[spec.name],
        password=TEST_PASSWORD,
        http=http,
        device=spec.name,
        plan=plan,
        recorder=recorder,
    )
    skew = spec.skew_ms
    branch_id = world.branch(spec.branch)
    client = SyncClient(
        LocalStore(folder / f"{spec.name}.sqlite"),
        transport,
        branch_id=branch_id,
        schema_version=spec.schema,
        physical=lambda: now_ms() + skew,
        # A slow clock keeps its skew (it is never corrected); a fast one is corrected by the
        # client, but its HLC cannot go back, so every op it makes stays far in the future.
        correct_clock=skew >= 0,
    )
    return Device(spec, client, transport, branch_id)


class Simulation:
    def __init__(self, seed: int, world: World, http: httpx.AsyncClient, folder: Path) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.world = world
        self.http = http
        self.folder = folder
        self.plan = FaultPlan(random.Random(seed * 7919 + 1))
        self.recorder = Recorder()
        self.devices = {
            spec.name: make_device(spec, world, http, folder, self.plan, self.recorder)
            for spec in DEVICES
        }
        self.ops: dict[str, OpRecord] = {}
        self.patients: dict[str, str] = {}  # id -> branch key, every patient any device made
        self.verified: dict[str, tuple[str | None, int]] = {}  # result id -> (value, at ms)
        self.schema_bumped = False
        self.log: list[str] = []

    # -- queuing ------------------------------------------------------------------------------

    def queue(
        self,
        device: Device,
        local: LocalOp,
        kind: str,
        *,
        expect_rejected: bool = False,
    ) -> OpRecord:
        data = dict(local.data)
        if device.client.schema_version == 1 and local.entity == "patient":
            sent = {V1_NAMES.get(k, k): v for k, v in data.items()}
            local = LocalOp(
                local.entity, local.operation, local.entity_id, sent, local.base_version
            )
        (op,) = device.client.write([local])
        record = OpRecord(op, device.name, kind, data, expect_rejected)
        self.ops[op.op_id] = record
        return record

    # -- what a device sees -------------------------------------------------------------------

    @staticmethod
    def _live(device: Device, entity: str) -> list[Any]:
        return [r for r in device.client.rows(entity) if not r.deleted and r.data]

    def _synced(self, device: Device, entity: str) -> list[Any]:
        return [r for r in self._live(device, entity) if r.version is not None]

    # -- random operations ----------------------------------------------------------------------

    def act(self, device: Device) -> None:
        role = device.spec.role
        if role in ("front_desk",):
            choices = {
                self._create_patient: 3.0,
                self._register_and_mark: 1.0,
                self._patient_lww: 3.0,
                self._patient_identity: 1.5,
                self._pregnant: 1.5,
                self._create_order: 2.0,
                self._order_lww: 1.0,
                self._order_notes: 1.0,
                self._cancel_order: 0.3,
                self._collect: 2.0,
                self._payment: 1.0,
                self._probe_delete: 0.2,
                self._probe_other_branch: 0.3,
            }
        elif role == "phlebotomist":
            choices = {self._collect: 3.0, self._patient_lww: 1.0, self._probe_order: 0.4}
        elif role == "technician":
            choices = {
                self._receive: 3.0,
                self._reject_sample: 0.3,
                self._append_result: 3.0,
                self._edit_result: 2.0,
                self._probe_register: 0.2,
            }
        elif role == "pathologist":
            choices = {self._edit_result: 2.0, self._append_result: 1.0}
        else:  # admin
            choices = {
                self._delete_patient: 0.6,
                self._patient_lww: 2.0,
                self._patient_identity: 1.0,
                self._order_lww: 1.0,
                self._pregnant: 0.5,
            }
        actions = list(choices)
        action = self.rng.choices(actions, weights=[choices[a] for a in actions])[0]
        action(device)

    def _create_patient(self, device: Device) -> None:
        branch_key = device.spec.branch or "cc1"
        data = {
            "full_name": self.rng.choice(NAMES),
            "sex": self.rng.choice(("female", "female", "male")),
            "date_of_birth": self.rng.choice(BIRTHDAYS),
            "registered_at_branch_id": self.world.branches[branch_key],
            "city": self.rng.choice(CITIES),
            "mobile": self.rng.choice(MOBILES),
        }
        record = self.queue(device, LocalOp("patient", "create", _new_id(), data), "create")
        self.patients[record.op.entity_id] = branch_key

    def _register_and_mark(self, device: Device) -> None:
        """Register and, before the next sync, mark pregnant (issue 10): the edit travels in the
        same push as the registration and must apply, as it would in a later push."""
        self._create_patient(device)
        created = next(r for r in reversed(self.ops.values()) if r.device == device.name)
        if created.data.get("sex") == "female":
            data = {"pregnant": True}
            local = LocalOp("patient", "update", created.op.entity_id, data)
            self.queue(device, local, "own_guarded")

    def _pick(self, rows: list[Any]) -> Any | None:
        return self.rng.choice(rows) if rows else None

    def _patient_lww(self, device: Device) -> None:
        row = self._pick(self._live(device, "patient"))
        if row is None:
            return self._create_patient(device)
        name = self.rng.choice(PATIENT_LWW)
        pool = {"city": CITIES, "email": EMAILS, "pincode": PINCODES, "mobile": MOBILES}[name]
        value = self.rng.choice(pool)
        self.queue(device, LocalOp("patient", "update", row.id, {name: value}), "lww")
        return None

    def _patient_identity(self, device: Device) -> None:
        row = self._pick(self._synced(device, "patient"))
        if row is None:
            return None
        name = self.rng.choice(PATIENT_IDENTITY)
        value = self.rng.choice(NAMES if name == "full_name" else BIRTHDAYS)
        self.queue(device, LocalOp("patient", "update", row.id, {name: value}), "identity")
        return None

    def _pregnant(self, device: Device) -> None:
        rows = [r for r in self._synced(device, "patient") if r.data.get("sex") == "female"]
        row = self._pick(rows)
        if row is None:
            return
        value = not bool(row.data.get("pregnant"))
        self.queue(device, LocalOp("patient", "update", row.id, {"pregnant": value}), "guarded")

    def _create_order(self, device: Device) -> None:
        rows = [
            r
            for r in self._synced(device, "patient")
            if r.data.get("registered_at_branch_id") == device.branch_id
        ]
        row = self._pick(rows)
        if row is None or device.branch_id is None:
            return
        data = {
            "patient_id": row.id,
            "branch_id": device.branch_id,
            "items": [self.world.test_code],
            "priority": self.rng.choice(PRIORITIES),
            "referring_doctor": self.rng.choice(DOCTORS),
            "clinical_notes": self.rng.choice(NOTES),
        }
        self.queue(device, LocalOp("order", "create", _new_id(), data), "create")

    def _order_lww(self, device: Device) -> None:
        row = self._pick(self._synced(device, "order"))
        if row is None:
            return
        if self.rng.random() < 0.5:
            changes: dict[str, Any] = {"priority": self.rng.choice(PRIORITIES)}
        else:
            changes = {"referring_doctor": self.rng.choice(DOCTORS[:2])}
        self.queue(device, LocalOp("order", "update", row.id, changes), "lww")

    def _order_notes(self, device: Device) -> None:
        row = self._pick(self._synced(device, "order"))
        if row is None:
            return
        note = self.rng.choice(NOTES)
        self.queue(device, LocalOp("order", "update", row.id, {"clinical_notes": note}), "guarded")

    def _cancel_order(self, device: Device) -> None:
        row = self._pick(self._synced(device, "order"))
        if row is None:
            return
        data = {"to": "cancelled", "reason": "patient left"}
        self.queue(device, LocalOp("order", "transition", row.id, data), "state")

    def _collect(self, device: Device) -> None:
        rows = [r for r in self._synced(device, "sample") if r.data.get("status") == "ordered"]
        row = self._pick(rows)
        if row is None:
            return
        data = {"to": "collected", "branch_id": device.branch_id}
        self.queue(device, LocalOp("sample", "transition", row.id, data), "state")

    def _payment(self, device: Device) -> None:
        row = self._pick(self._synced(device, "order"))
        if row is None:
            return
        data = {"order_id": row.id, "amount": "100.00", "method": "cash", "reference": None}
        self.queue(device, LocalOp("payment", "append", _new_id(), data), "append")

    def _receive(self, device: Device) -> None:
        rows = [r for r in self._synced(device, "sample") if r.data.get("status") == "collected"]
        row = self._pick(rows)
        if row is None:
            return
        data = {"to": "received", "branch_id": self.world.branches["lab"]}
        self.queue(device, LocalOp("sample", "transition", row.id, data), "state")

    def _reject_sample(self, device: Device) -> None:
        rows = [r for r in self._synced(device, "sample") if r.data.get("status") == "collected"]
        row = self._pick(rows)
        if row is None:
            return
        data = {"to": "rejected", "reason": "haemolysed"}
        self.queue(device, LocalOp("sample", "transition", row.id, data), "state")

    def _append_result(self, device: Device) -> None:
        received = {
            r.id for r in self._synced(device, "sample") if r.data.get("status") == "received"
        }
        resulted = {r.data.get("order_test_id") for r in self._live(device, "result")}
        tests = [
            t
            for o in self._synced(device, "order")
            for t in o.data.get("tests") or []
            if t.get("sample_id") in received and t["id"] not in resulted
        ]
        test = self._pick(tests)
        if test is None:
            return
        value = f"{self.rng.uniform(70, 140):.1f}"
        data = {"order_test_id": test["id"], "value": value, "unit": "mg/dL"}
        self.queue(device, LocalOp("result", "append", _new_id(), data), "append")

    def _edit_result(self, device: Device) -> None:
        rows = [r for r in self._synced(device, "result") if r.data.get("is_current")]
        row = self._pick(rows)
        if row is None:
            return
        value = f"{self.rng.uniform(70, 140):.1f}"
        self.queue(device, LocalOp("result", "update", row.id, {"value": value}), "guarded")

    def _delete_patient(self, device: Device) -> None:
        row = self._pick(self._synced(device, "patient"))
        if row is None:
            return
        self.queue(device, LocalOp("patient", "delete", row.id, {}), "delete")

    # -- authorisation probes: each must be REJECTED and must not hold up later ops ------------

    def _probe_delete(self, device: Device) -> None:
        row = self._pick(self._synced(device, "patient"))
        if row is not None:  # only admins delete patients
            self.queue(
                device, LocalOp("patient", "delete", row.id, {}), "probe", expect_rejected=True
            )

    def _probe_other_branch(self, device: Device) -> None:
        if device.spec.user_branches != (device.spec.branch,):
            return
        foreign = [pid for pid, key in self.patients.items() if key != device.spec.branch]
        created = [pid for pid in foreign if self._accepted_create(pid)]
        if not created:
            return
        target = self.rng.choice(created)
        data = {"city": self.rng.choice(CITIES)}
        self.queue(
            device, LocalOp("patient", "update", target, data), "probe", expect_rejected=True
        )

    def _accepted_create(self, patient_id: str) -> bool:
        for record in self.ops.values():
            if record.op.entity_id == patient_id and record.op.operation == "create":
                seen = self.recorder.observed.get(record.op.op_id)
                return seen is not None and seen.first is not None and seen.first[0] == "APPLIED"
        return False

    def _probe_order(self, device: Device) -> None:
        row = self._pick(self._synced(device, "patient"))
        if row is None or device.branch_id is None:
            return
        data = {"patient_id": row.id, "branch_id": device.branch_id, "items": ["X"]}
        self.queue(
            device, LocalOp("order", "create", _new_id(), data), "probe", expect_rejected=True
        )

    def _probe_register(self, device: Device) -> None:
        data = {
            "full_name": "Not Allowed",
            "sex": "male",
            "date_of_birth": "1990-01-01",
            "registered_at_branch_id": self.world.branches["cc1"],
        }
        self.queue(
            device, LocalOp("patient", "create", _new_id(), data), "probe", expect_rejected=True
        )

    # -- syncing ------------------------------------------------------------------------------

    async def sync(self, device: Device) -> bool:
        """One ``sync()``; a retryable failure (our faults) is what a real agent retries."""
        try:
            report = await device.client.sync()
        except RetryableError as error:
            device.errors += 1
            self.log.append(f"{device.name}: {error}")
            return False
        device.syncs += 1
        device.resets += report.resets
        return True

    async def quiesce(self, devices: list[Device], *, passes: int = 4) -> None:
        """Sync each device until its outbox is empty and a sync pulls nothing new."""
        errors = {d.name: d.errors for d in devices}
        for device in devices:
            for _ in range(passes * 3):
                ok = await self.sync(device)
                if ok and not device.client.pending():
                    break
            else:
                raise AssertionError(f"{device.name} did not drain its outbox: {self.log[-3:]}")
        # One more pass: the last device's writes reach the first one.
        for device in devices:
            for _ in range(8):
                if await self.sync(device) or not self.plan.enabled:
                    break
            assert not device.client.pending(), f"{device.name}: {self.log[-2:]}"
            assert self.plan.enabled or device.errors == errors[device.name], (
                f"{device.name} failed a fault-free sync: {self.log[-2:]}"
            )

    async def verify_some(self, count: int) -> None:
        """A pathologist verifies entered results through the REST API (sets up immutability)."""
        candidates = [
            r
            for r in self._synced(self.devices["path"], "result")
            if r.data.get("status") == "entered"
            and r.data.get("is_current")
            and r.id not in self.verified
        ]
        self.rng.shuffle(candidates)
        for row in candidates[:count]:
            response = await self.http.post(
                f"/api/v1/results/{row.id}/verify", headers=self.world.pathologist_headers
            )
            if response.status_code == 200:
                # The entered value as the device saw it (the REST view formats it differently).
                self.verified[row.id] = (row.data.get("value"), now_ms())
            else:
                self.log.append(f"verify {row.id}: {response.status_code} {response.text[:200]}")

    async def run(self, rounds: int) -> None:
        """Random rounds: offline windows, local ops, concurrent syncs, a mid-run schema bump."""
        sleeper = self.devices["sleeper"]
        bump_at = rounds // 2
        # The sleeper holds a real cursor before it goes away (a null cursor cannot be stale).
        self._create_patient(sleeper)
        self.plan.enabled = False
        await self.quiesce([sleeper])
        self.plan.enabled = True
        for number in range(rounds):
            if number == bump_at - 3:
                for device in self.devices.values():
                    if device.spec.schema == 1:  # offline while v1 ops pile up
                        device.offline_until = max(device.offline_until, bump_at + 1)
            if number == bump_at:
                # The app updates: queued v1 ops stay v1; new ops are queued under schema 2.
                for device in self.devices.values():
                    device.client.schema_version = 2
                self.schema_bumped = True
            online: list[Device] = []
            for device in self.devices.values():
                if device is sleeper and number >= 2:
                    pass  # offline past the horizon from round 2 on; its ops stay queued
                elif device.offline_until <= number and self.rng.random() < 0.15:
                    device.offline_until = number + self.rng.randint(1, 4)
                for _ in range(self.rng.randint(0, 3)):
                    self.act(device)
                if device.offline_until <= number and not (device is sleeper and number >= 2):
                    online.append(device)
            await asyncio.gather(*(self.sync(d) for d in online))
            if number % 4 == 3:
                await self.verify_some(2)


def _new_id() -> str:
    from nidaan.kit.ids import new_id

    return str(new_id())
