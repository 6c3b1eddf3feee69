"""Patient registrations and edits of a push, written set-based (issue 19).

Inside ``SyncService._apply_run`` (one savepoint around a run of independent ops), each
patient registration and edit is prepared in memory, op by op, with its own validation,
merge, change-capture origin and audit snapshot, and the writes wait here: at the end of the
run (or before any op that does not wait) all new patients go in with one INSERT, their
duplicate lookup is one query, the edits are one ``UPDATE … FROM (VALUES …)`` per set of
edited columns and the audit entries one INSERT. An op that does not wait (another entity, a
delete) first writes what is pending, so it sees the database as the one-by-one path would;
an edit of a column duplicate detection compares is written at once, so a later registration
compares with the stored value as it would one by one. If any write fails, the run rolls
back and the service applies the same ops one by one, each in its own savepoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, column, func, insert, inspect, update, values
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from nidaan.audit.service import AuditEntry, audit_service
from nidaan.kit.db import note_bulk_change
from nidaan.patients import batch as patients_batch
from nidaan.patients.models import Patient, PatientDuplicateFlag
from nidaan.patients.schemas import PatientCreate, PatientUpdate
from nidaan.patients.service import SENSITIVE, snapshot
from nidaan.sync import prefetch
from nidaan.sync.context import Op, OpContext

_KEY = "nidaan.sync.batch.pending"
ENTITY = "patient"
_TABLE = Patient.__table__
# Attribute -> column of every mapped column (``mobile`` is stored as ``mobile_encrypted``).
_COLUMNS = {attr.key: attr.columns[0] for attr in inspect(Patient).column_attrs}
_ALL_FIELDS = tuple(_COLUMNS)
_SERVER_SET = {"created_at", "updated_at"}


@dataclass
class _Registration:
    patient: Patient
    # What duplicate detection compares, as registered (the patient may be edited later).
    probe: patients_batch.Probe
    after: dict[str, Any]
    # Earlier registrations of the same pending set it may duplicate: (id, keys then).
    earlier: list[tuple[uuid.UUID, Any]]
    organisation_id: uuid.UUID
    actor: Any
    flags: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Edit:
    patient: Patient
    values: dict[str, Any]
    old_version: int


@dataclass
class PendingWrites:
    registrations: list[_Registration] = field(default_factory=list)
    edits: dict[uuid.UUID, _Edit] = field(default_factory=dict)
    # Audit entries in op order; a registration's is completed when its duplicates are known.
    log: list[AuditEntry | _Registration] = field(default_factory=list)
    # New patients not written yet (not in the session), and those written by this run.
    unwritten: set[uuid.UUID] = field(default_factory=set)
    attached: list[Patient] = field(default_factory=list)
    edited: list[Patient] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.registrations or self.edits or self.log)


def start(session: AsyncSession) -> PendingWrites:
    pending = PendingWrites()
    session.info[_KEY] = pending
    return pending


def active(session: AsyncSession) -> PendingWrites | None:
    pending: PendingWrites | None = session.info.get(_KEY)
    return pending


def stop(session: AsyncSession) -> None:
    session.info.pop(_KEY, None)


def waits(op: Op) -> bool:
    """Whether the op's writes can wait for the set-based write."""
    return op.entity == ENTITY and op.operation in ("create", "update")


def discard(session: AsyncSession) -> None:
    """The run is rolled back: forget its pending writes and the objects they touched.

    Written patients leave the session (their rows are gone); edited ones are expired (their
    values in memory were never kept), so whoever reads them next reads the database."""
    pending = active(session)
    if pending is None:
        return
    for patient in pending.attached:
        if patient in session:
            session.expunge(patient)
    for patient in pending.edited:
        if patient in session:
            session.expire(patient)
    session.info[_KEY] = PendingWrites()


async def register(ctx: OpContext, data: PatientCreate) -> None:
    """A registration of an unused id, written later (raises what ``register`` raises)."""
    pending = active(ctx.session)
    assert pending is not None
    patient = await patients_batch.new_patient(ctx.session, ctx.principal, data)
    probe = patients_batch.probe_of(patient)
    earlier = [
        (r.patient.id, patients_batch.keys_of(r.patient))
        for r in reversed(pending.registrations)
        if patients_batch.may_match(probe, r.patient)
    ]
    registration = _Registration(
        patient,
        probe,
        snapshot(patient),
        earlier,
        ctx.principal.organisation_id,
        ctx.principal.actor,
    )
    pending.registrations.append(registration)
    pending.log.append(registration)
    pending.unwritten.add(patient.id)
    # Captured now, under this op's origin, as the flush of the patient would have been.
    note_bulk_change(ctx.session, [patient], _ALL_FIELDS)
    prefetch.add_row(ctx.session, ENTITY, patient)


async def edit(ctx: OpContext, patient: Patient, data: PatientUpdate) -> None:
    """An edit of ``patient`` as ``service.update`` makes it, written later."""
    session = ctx.session
    pending = active(session)
    assert pending is not None
    changed = patients_batch.edited_values(patient, data)
    if patient.id in pending.edits and changed:
        await write(session)  # one pending UPDATE per row: write the earlier edit first
    before = snapshot(patient)
    if changed:
        if patient.id in pending.unwritten:
            for name, value in changed.items():
                setattr(patient, name, value)
            patient.version += 1
        else:
            old = patient.version
            for name, value in changed.items():
                set_committed_value(patient, name, value)
            set_committed_value(patient, "version", old + 1)
            pending.edits[patient.id] = _Edit(patient, changed, old)
            pending.edited.append(patient)
        note_bulk_change(session, [patient], (*changed, "version", "updated_at"))
    pending.log.append(
        AuditEntry(
            organisation_id=ctx.principal.organisation_id,
            actor=ctx.principal.actor,
            action="patient.updated",
            entity_type="patient",
            entity_id=patient.id,
            before=before,
            after=snapshot(patient),
        )
    )
    if patients_batch.DUPLICATE_KEYS.intersection(changed):
        await write(session)


async def write(session: AsyncSession) -> None:
    """Write everything pending, in a few statements."""
    pending = active(session)
    if pending is None or pending.empty:
        return
    registrations, edits, log = pending.registrations, pending.edits, pending.log
    pending.registrations, pending.edits, pending.log = [], {}, []
    if registrations:
        await _insert(session, pending, registrations)
    for group in _by_columns(edits.values()):
        await _update(session, group)
    entries = [_registered(e) if isinstance(e, _Registration) else e for e in log]
    await audit_service.record_many(session, entries, sensitive=SENSITIVE)


async def _insert(
    session: AsyncSession, pending: PendingWrites, registrations: list[_Registration]
) -> None:
    organisation_id = registrations[0].organisation_id
    stored = await patients_batch.stored_candidates(
        session, organisation_id, [r.probe for r in registrations]
    )
    flags: list[dict[str, Any]] = []
    for registration in registrations:
        probe = registration.probe
        candidates = [
            *registration.earlier,
            *(
                (row.id, patients_batch.stored_keys(row))
                for row in stored
                if row.id != probe.id and patients_batch.may_match(probe, row)
            ),
        ]
        registration.flags = patients_batch.duplicate_flags(probe, candidates)
        flags.extend(registration.flags)
    rows = [
        {
            column.key: getattr(r.patient, name)
            for name, column in _COLUMNS.items()
            if name not in _SERVER_SET
        }
        for r in registrations
    ]
    written = await session.execute(
        insert(_TABLE).returning(
            _TABLE.c.id, _TABLE.c.created_at, _TABLE.c.updated_at, sort_by_parameter_order=True
        ),
        rows,
    )
    stamps = {row.id: row for row in written}
    for registration in registrations:
        patient = registration.patient
        patient.created_at = stamps[patient.id].created_at
        patient.updated_at = stamps[patient.id].updated_at
        # Into the session as if loaded: later ops of the push (and the pull) find it there.
        make_transient_to_detached(patient)
        session.add(patient)
        pending.unwritten.discard(patient.id)
        pending.attached.append(patient)
    if flags:
        await session.execute(insert(PatientDuplicateFlag.__table__), flags)


def _by_columns(edits: Sequence[_Edit] | Any) -> list[list[_Edit]]:
    groups: dict[tuple[str, ...], list[_Edit]] = {}
    for item in edits:
        groups.setdefault(tuple(sorted(item.values)), []).append(item)
    return list(groups.values())


async def _update(session: AsyncSession, group: list[_Edit]) -> None:
    """One ``UPDATE … FROM (VALUES …)`` for edits of the same columns; the rows are locked
    by this transaction, and the version each was read at is checked all the same."""
    names = sorted(group[0].values)
    given = values(
        column("id", _TABLE.c.id.type),
        column("old_version", Integer()),
        *(column(f"v{i}", _COLUMNS[name].type) for i, name in enumerate(names)),
        name="edited",
    ).data(
        [
            (item.patient.id, item.old_version, *(item.values[name] for name in names))
            for item in group
        ]
    )
    statement = (
        update(_TABLE)
        .where(_TABLE.c.id == given.c.id, _TABLE.c.version == given.c.old_version)
        .values(
            {
                **{_COLUMNS[name]: given.c[f"v{i}"] for i, name in enumerate(names)},
                _TABLE.c.version: _TABLE.c.version + 1,
                _TABLE.c.updated_at: func.now(),
            }
        )
        .returning(_TABLE.c.id, _TABLE.c.updated_at)
    )
    moved = {row.id: row.updated_at for row in await session.execute(statement)}
    if len(moved) != len(group):
        raise RuntimeError("a patient changed under the push's lock")
    for item in group:
        set_committed_value(item.patient, "updated_at", moved[item.patient.id])


def _registered(registration: _Registration) -> AuditEntry:
    return AuditEntry(
        organisation_id=registration.organisation_id,
        actor=registration.actor,
        action="patient.registered",
        entity_type="patient",
        entity_id=registration.patient.id,
        after={
            **registration.after,
            "possible_duplicates": [str(f["candidate_id"]) for f in registration.flags],
        },
    )
