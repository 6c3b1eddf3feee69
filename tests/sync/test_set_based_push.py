"""A push of many patient ops, applied set-based, answers and writes as op by op (issue 19).

Hypothesis draws mixed scripts: registrations (some of the same person by name and date of
birth or by mobile, to raise duplicate flags, also against one registered earlier in the same
push), edits of registered patients and of patients registered earlier in the same push
(demographics, the mobile that duplicate detection compares, the name under identity review),
bad ops (an invalid mobile or pincode, a field sync may not change, an unknown patient, a
client sequence already used) and replays of ops of an earlier push.

The same script runs twice, each against a fresh organisation: once as two pushes (the
set-based path: one INSERT, one UPDATE per set of columns, one audit INSERT …) and once with
every op in its own push (each op in its own savepoint, the path the set-based one must
equal). Checked: the same answer for every op, and the same patients, audit entries,
duplicate flags and field history.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from nidaan.audit.models import AuditLog
from nidaan.patients.models import Patient, PatientDuplicateFlag
from nidaan.sync.models import SyncFieldHistory
from tests.sync.conftest import Device, _build_lab

PEOPLE = (
    ("Asha Rao", "1990-04-01", "+919876543210"),
    ("Asha  Rao", "1990-04-01", None),  # the same name and birth date: a likely duplicate
    ("Ravi Kumar", "1985-01-15", "+919876543210"),  # the same mobile, another person
    ("Ravi Kumar", "1985-01-15", "+919123456780"),
    ("Meena Iyer", "2001-07-30", "+919988776655"),
)
EDITS = (
    ("city", "Pune"),
    ("city", "Nashik"),
    ("email", "Someone@Example.com"),
    ("mobile", "+919123456780"),
    ("mobile", "98765 43210"),
    ("full_name", "Asha R Rao"),
    ("address", "12 MG Road"),
    ("pincode", "12"),  # invalid: rejected
    ("mrn", "X-1"),  # not changeable by sync: rejected
    ("mobile", "12345"),  # invalid: rejected
)
BASE = 2  # patients registered before the script runs
_UUID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Step:
    kind: str  # create | edit | stale | replay
    slot: int = 0  # the patient (create, edit); for replay: which earlier step
    arg: int = 0  # person (create) or edit


@st.composite
def scripts(draw: st.DrawFn) -> tuple[list[Step], list[Step]]:
    """Two pushes; the second may replay ops of the first."""
    created = BASE
    first: list[Step] = []
    for _ in range(draw(st.integers(2, 14))):
        kind = draw(st.sampled_from(["create", "create", "edit", "edit", "edit", "stale"]))
        if kind == "create":
            first.append(Step("create", created, draw(st.integers(0, len(PEOPLE) - 1))))
            created += 1
        elif kind == "edit":
            # Up to one slot past those created so far: an unknown patient.
            slot = draw(st.integers(0, created))
            first.append(Step("edit", slot, draw(st.integers(0, len(EDITS) - 1))))
        else:
            first.append(Step("stale"))
    second: list[Step] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["create", "edit", "edit", "replay"]))
        if kind == "create":
            second.append(Step("create", created, draw(st.integers(0, len(PEOPLE) - 1))))
            created += 1
        elif kind == "edit":
            second.append(
                Step("edit", draw(st.integers(0, created)), draw(st.integers(0, len(EDITS) - 1)))
            )
        else:
            second.append(Step("replay", draw(st.integers(0, len(first) - 1))))
    return first, second


class Run:
    """One organisation playing the script, with its own patient ids."""

    def __init__(self, client: Any, lab: Any) -> None:
        self.lab = lab
        self.device = Device(client, lab.desk1, lab.cc1.id)
        self.ids = [uuid.uuid4() for _ in range(40)]
        self.sent: list[dict[str, Any]] = []

    def op(self, step: Step) -> dict[str, Any]:
        if step.kind == "replay":
            return self.sent[step.slot]
        if step.kind == "stale":
            # A new op under a client sequence already used (the device's counter stays).
            return {
                "opId": str(uuid.uuid4()),
                "clientSeq": 1,
                "entity": "patient",
                "entityId": str(self.ids[0]),
                "operation": "update",
                "data": {"city": "Agra"},
                "hlc": str(self.device.clock.tick()),
            }
        if step.kind == "create":
            return self.device.op("patient", self.ids[step.slot], "create", self.person(step.arg))
        name, value = EDITS[step.arg]
        return self.device.op("patient", self.ids[step.slot], "update", {name: value})

    def person(self, index: int) -> dict[str, Any]:
        name, born, mobile = PEOPLE[index]
        data = {"full_name": name, "sex": "female", "date_of_birth": born}
        data["registered_at_branch_id"] = str(self.lab.cc1.id)
        if mobile:
            data["mobile"] = mobile
        return data

    def plain(self, text: Any) -> Any:
        """Patient ids replaced by their slot, so two runs compare."""
        if not isinstance(text, str):
            return text
        slots = {str(i): f"<patient {n}>" for n, i in enumerate(self.ids)}
        return _UUID.sub(lambda m: slots.get(m.group(0), "<id>"), text)


async def _play(run: Run, pushes: list[list[Step]], *, one_by_one: bool) -> list[Any]:
    await run.device.sync()  # bind
    device = run.device
    await device.sync(
        *(device.op("patient", run.ids[i], "create", run.person(i)) for i in range(BASE))
    )
    answers: list[Any] = []
    for steps in pushes:
        ops = []
        for step in steps:
            op = run.op(step)
            ops.append(op)
            if step.kind != "replay":
                run.sent.append(op)
        calls = [[op] for op in ops] if one_by_one else [ops]
        for call in calls:
            result = await run.device.sync(*call)
            by_id = {r["opId"]: r for r in result["results"]}
            answers.extend(
                (by_id[op["opId"]]["status"], run.plain(by_id[op["opId"]]["reason"])) for op in call
            )
    return answers


def _comparable(value: Any, key: str = "") -> Any:
    """Audit changes as two runs can agree on them: without MRNs (numbers drawn by a push
    that was rolled back and applied op by op are skipped: unique, not gapless), and with
    the possible duplicates as a set (candidates registered in one transaction share their
    ``created_at``, so their order is the database's, one by one as well)."""
    if isinstance(value, dict):
        return sorted((k, _comparable(v, k)) for k, v in value.items() if k != "mrn")
    if key == "possible_duplicates":
        return sorted(value)
    return value


async def _stored(committing_session: Any, run: Run) -> dict[str, Any]:
    async with committing_session() as session:
        patients = {
            p.id: p
            for p in await session.scalars(
                select(Patient).where(Patient.organisation_id == run.lab.organisation.id)
            )
        }
        slot = {pid: n for n, pid in enumerate(run.ids)}
        rows = {
            slot[p.id]: (
                p.full_name,
                p.name_normalized,
                p.sex,
                str(p.date_of_birth),
                p.mobile,
                p.mobile_index,
                p.email,
                p.address,
                p.city,
                p.pincode,
                p.version,
                p.is_active,
            )
            for p in patients.values()
        }
        flags = Counter(
            (slot[f.patient_id], slot[f.candidate_id], f.score, f.reasons, f.status)
            for f in await session.scalars(
                select(PatientDuplicateFlag).where(
                    PatientDuplicateFlag.organisation_id == run.lab.organisation.id
                )
            )
        )
        audit = Counter(
            (
                slot.get(uuid.UUID(e.entity_id)),
                e.action,
                str(_comparable(json.loads(run.plain(json.dumps(e.changes or {}, default=str))))),
            )
            for e in await session.scalars(
                select(AuditLog).where(
                    AuditLog.organisation_id == run.lab.organisation.id,
                    AuditLog.entity_type == "patient",
                )
            )
        )
        history = Counter(
            (slot[h.entity_id], h.field, str(h.value), h.outcome)
            for h in await session.scalars(
                select(SyncFieldHistory).where(
                    SyncFieldHistory.organisation_id == run.lab.organisation.id
                )
            )
        )
    return {"patients": rows, "flags": flags, "audit": audit, "history": history}


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=scripts())
async def test_set_based_push_equals_op_by_op(
    live_client: Any, committing_session: Any, script: tuple[list[Step], list[Step]]
) -> None:
    first, second = script
    runs = []
    for one_by_one in (False, True):
        async with committing_session() as session:
            lab = await _build_lab(session)
        run = Run(live_client, lab)
        answers = await _play(run, [first, second], one_by_one=one_by_one)
        runs.append((answers, await _stored(committing_session, run)))
    (batched, batched_state), (single, single_state) = runs
    assert batched == single
    for part in ("patients", "flags", "audit", "history"):
        assert batched_state[part] == single_state[part], part
