"""Change capture: every committed change to a synced row gets a per-organisation sequence.

Whatever writes the row — REST, a job, an analyzer interface or a sync op — the ORM flush is
seen here (``after_flush``), and at the end of the transaction the organisation's
``sync_tenant_state`` row is bumped by the commit statement (``nidaan.kit.bundle``). That row
lock is held until COMMIT, so sequence order equals commit order and a reader paging by
``seq`` never skips a row that commits late (sync fact sheet §1.9, first fix). The lock is
taken at the very end of the transaction, so writers queue only for the commit itself.

The same step stamps per-field merge metadata (HLC, client, row version) for the fields a
merge class tracks, so last-writer-wins and version guards also see REST edits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from nidaan.kit import bundle
from nidaan.kit.db import ACTOR_LABEL, on_bulk_change
from nidaan.kit.time import utcnow
from nidaan.sync import sealing
from nidaan.sync.hlc import HLC
from nidaan.sync.models import SyncConflict
from nidaan.sync.registry import BY_CHILD, BY_MODEL, EntityHandler, MergeClass
from nidaan.sync.server_clock import server_clock

_PENDING = "nidaan.sync.pending"
_ORIGIN = "nidaan.sync.origin"
_MARKS = "nidaan.sync.savepoint_marks"
_ENDED = "nidaan.sync.savepoint_ended"
_FLUSHES = "nidaan.sync.flush_count"
_OPENED = "nidaan.sync.conflicts_opened"
#: Merge classes whose fields can have open conflicts (which a later change supersedes).
_CONFLICTING = frozenset({MergeClass.GUARDED, MergeClass.LWW_IDENTITY})


@dataclass(frozen=True)
class Origin:
    """The sync op on whose behalf the session is writing right now."""

    client_id: uuid.UUID | None
    op_id: uuid.UUID | None
    hlc: HLC
    actor: str | None = None


@dataclass(frozen=True)
class _Change:
    flush: int
    origin: Origin | None
    value: Any


@dataclass
class _Pending:
    handler: EntityHandler
    organisation_id: uuid.UUID
    entity_id: uuid.UUID
    row: Any
    fields: dict[str, Origin | None] = field(default_factory=dict)
    origin: Origin | None = None
    deleted: bool = False
    # Per field that can have conflicts: each change in this transaction as (flush number,
    # origin, value then), so a conflict is superseded by the first change after it opened.
    changes: dict[str, list[_Change]] = field(default_factory=dict)


def set_origin(session: Session, origin: Origin | None) -> None:
    if origin is None:
        session.info.pop(_ORIGIN, None)
    else:
        session.info[_ORIGIN] = origin


def checkpoint(session: Session) -> dict[tuple[str, uuid.UUID], _Pending]:
    """A copy of what is captured so far (restored when a savepoint rolls back)."""
    pending: dict[tuple[str, uuid.UUID], _Pending] = session.info.get(_PENDING, {})
    return {
        key: _Pending(
            p.handler,
            p.organisation_id,
            p.entity_id,
            p.row,
            dict(p.fields),
            p.origin,
            p.deleted,
            {name: list(changes) for name, changes in p.changes.items()},
        )
        for key, p in pending.items()
    }


def restore(session: Session, saved: dict[tuple[str, uuid.UUID], _Pending]) -> None:
    session.info[_PENDING] = saved


def _changed_fields(obj: Any, is_new: bool) -> list[str]:
    state = inspect(obj)
    if is_new:
        return [attr.key for attr in state.mapper.column_attrs]
    return [
        attr.key
        for attr in state.mapper.column_attrs
        if state.attrs[attr.key].history.has_changes()
    ]


def pending_stamps(
    session: Session, handler: EntityHandler, entity_id: uuid.UUID
) -> dict[str, Any]:
    """Merge stamps of the fields this transaction has changed so far, not yet numbered.

    Sequence numbers (and so the stored stamps) are assigned at commit; an op that edits a row
    an earlier op of the same push created or changed must see those writes too, or the
    outcome would depend on how the ops were batched. ``"v"`` is None: not numbered yet.
    """
    pending: dict[tuple[str, uuid.UUID], _Pending] = session.info.get(_PENDING, {})
    entry = pending.get((handler.name, entity_id))
    if entry is None or entry.deleted:
        return {}
    stamps: dict[str, Any] = {}
    for column, origin in entry.fields.items():
        name = handler.field_for_column(column)
        if name is None or origin is None:
            continue
        stamps[name] = {
            "hlc": str(origin.hlc),
            "client": str(origin.client_id) if origin.client_id else None,
            "v": None,
            "by": origin.actor,
        }
    return stamps


def _next_flush(session: Session) -> int:
    number: int = session.info.get(_FLUSHES, 0) + 1
    session.info[_FLUSHES] = number
    return number


@event.listens_for(Session, "after_flush")
def _collect(session: Session, flush_context: Any) -> None:
    origin: Origin | None = session.info.get(_ORIGIN)
    flush = _next_flush(session)
    for obj in session.new:
        if isinstance(obj, SyncConflict):
            session.info.setdefault(_OPENED, {})[obj.id] = flush
    for collection, is_new, deleted in (
        (session.new, True, False),
        (session.dirty, False, False),
        (session.deleted, False, True),
    ):
        for obj in collection:
            handler = BY_MODEL.get(type(obj))
            if handler is None:
                parent = BY_CHILD.get(type(obj))
                if parent is not None:
                    _note_child(session, origin, *parent, obj)
                continue
            changed = _changed_fields(obj, is_new)
            if not changed and not deleted:
                continue
            _note(session, handler, obj, changed, deleted, origin, new=is_new)


def _note(
    session: Session,
    handler: EntityHandler,
    obj: Any,
    changed: Iterable[str],
    deleted: bool,
    origin: Origin | None,
    *,
    new: bool = False,
) -> None:
    pending = session.info.setdefault(_PENDING, {})
    key = (handler.name, obj.id)
    entry = pending.get(key)
    if entry is None:
        entry = pending[key] = _Pending(handler, obj.organisation_id, obj.id, obj)
    elif entry.row is None:
        entry.row = obj
    flush = session.info.get(_FLUSHES, 0)
    for column in changed:
        entry.fields[column] = origin
        name = handler.field_for_column(column)
        # A row just inserted cannot have older conflicts: no supersession query for it.
        conflicting = name is not None and handler.fields[name] in _CONFLICTING
        if conflicting and not (deleted or new):
            change = _Change(flush, origin, handler.read_field(obj, name))
            entry.changes.setdefault(name, []).append(change)
    entry.origin = origin or entry.origin
    entry.deleted = entry.deleted or deleted


@on_bulk_change
def _bulk_changed(session: Session, rows: Sequence[Any], fields: Sequence[str]) -> None:
    """Rows a service updated with one set-based UPDATE: captured as if flushed."""
    origin: Origin | None = session.info.get(_ORIGIN)
    _next_flush(session)
    for obj in rows:
        handler = BY_MODEL.get(type(obj))
        if handler is not None:
            _note(session, handler, obj, fields, False, origin)
            continue
        parent = BY_CHILD.get(type(obj))
        if parent is not None:
            _note_child(session, origin, *parent, obj)


def _note_child(
    session: Session, origin: Origin | None, handler: EntityHandler, attribute: str, child: Any
) -> None:
    """A child row (an order's test) changed: the parent's pull view changed with it."""
    parent_id = getattr(child, attribute)
    if parent_id is None:
        return
    pending = session.info.setdefault(_PENDING, {})
    key = (handler.name, parent_id)
    entry = pending.get(key)
    if entry is None:
        entry = pending[key] = _Pending(handler, child.organisation_id, parent_id, None)
    entry.fields.setdefault(child.__tablename__, origin)
    entry.origin = origin or entry.origin


@bundle.on_commit
def _assign_sequence(session: Session) -> bundle.Part | None:
    """Number the transaction's changes: the CTEs of the commit statement (nidaan.kit.bundle
    calls this once, at the end of the outermost transaction, after the last flush)."""
    if _supersede_conflicts(session):
        session.flush()  # captured too: devices pull the superseded conflicts
    pending: dict[tuple[str, uuid.UUID], _Pending] = session.info.pop(_PENDING, {})
    session.info.pop(_FLUSHES, None)
    session.info.pop(_OPENED, None)
    if not pending:
        return None
    by_org: dict[uuid.UUID, list[_Pending]] = {}
    for entry in pending.values():
        by_org.setdefault(entry.organisation_id, []).append(entry)
    # A fixed order, so two multi-organisation transactions cannot deadlock on the rows:
    # every organisation but the last gets a statement of its own (one statement's CTEs run
    # in no guaranteed order); the last one's goes with the commit statement.
    ordered = sorted(by_org.items())
    parts = [
        _changes_part(session, organisation_id, entries) for organisation_id, entries in ordered
    ]
    found = [part for part in parts if part is not None]
    for part in found[:-1]:
        bundle.execute(session, [part])
    return found[-1] if found else None


def _supersede_conflicts(session: Session) -> bool:
    """Open conflicts on a field this transaction changed are SUPERSEDED: a decision taken on
    the value they show would undo the later change (issue 10). Whatever wrote the field —
    a sync op, REST, a job, another conflict's resolution — is seen here. The conflict records
    the first change after it opened, so how ops were batched into transactions is invisible."""
    pending: dict[tuple[str, uuid.UUID], _Pending] = session.info.get(_PENDING, {})
    changed = {
        (entry.organisation_id, entry.handler.name, entry.entity_id, name): changes
        for entry in pending.values()
        if not entry.deleted
        for name, changes in entry.changes.items()
    }
    if not changed:
        return False
    candidates = session.scalars(
        select(SyncConflict).where(
            SyncConflict.organisation_id.in_({key[0] for key in changed}),
            SyncConflict.status == "OPEN",
            SyncConflict.entity_id.in_({key[2] for key in changed}),
        )
    )
    opened: dict[uuid.UUID, int] = session.info.get(_OPENED, {})
    superseded = False
    for conflict in candidates:
        key = (conflict.organisation_id, conflict.entity, conflict.entity_id, conflict.field)
        later = [
            change
            for change in changed.get(key, ())
            # Opened by this transaction: only changes after it count, and not the very op
            # that opened it (an auto-applied identity review applies its own value).
            if conflict.id not in opened
            or (
                change.flush > opened[conflict.id]
                and (change.origin is None or change.origin.op_id != conflict.op_id)
            )
        ]
        if not later:
            continue
        first = later[0]
        who = (first.origin.actor if first.origin else None) or session.info.get(ACTOR_LABEL)
        sealing.set_conflict_values(conflict, current_value=first.value)
        conflict.status = "SUPERSEDED"
        conflict.resolved_at = utcnow()
        conflict.resolution_reason = (
            f"superseded: {conflict.field} was changed by {who or 'the lab'} after this "
            "conflict opened"
        )[:1000]
        superseded = True
    return superseded


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: Any) -> None:
    # What was captured when a SAVEPOINT began, to go back to if it rolls back.
    if transaction.nested:
        session.info.setdefault(_MARKS, {})[id(transaction)] = checkpoint(session)


@event.listens_for(Session, "after_transaction_end")
def _end_savepoint(session: Session, transaction: Any) -> None:
    # SQLAlchemy ends the transaction before announcing a rollback: keep the mark of the one
    # that just ended for ``_forget`` below.
    if transaction.nested:
        mark = session.info.get(_MARKS, {}).pop(id(transaction), None)
        session.info[_ENDED] = (id(transaction), mark)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        # The whole transaction is gone, and everything it captured.
        for key in (_PENDING, _ORIGIN, _MARKS, _ENDED, _FLUSHES, _OPENED):
            session.info.pop(key, None)
    elif previous_transaction.nested:
        # Only the SAVEPOINT's work is gone: keep what was captured before it.
        ended_id, mark = session.info.pop(_ENDED, (None, None))
        if ended_id == id(previous_transaction) and mark is not None:
            restore(session, mark)


# The CTEs of the whole step: bump the organisation's head (its row lock orders the
# commits), append the change-log rows numbered from it, and merge each row's field stamps
# with the change's ``seq`` as their version. Three round trips were one per write before;
# now they ride in the transaction's commit statement (nidaan.kit.bundle).
_WRITE_CHANGES_CTES = """
head AS (
  INSERT INTO sync_tenant_state (organisation_id, head_seq) VALUES ({org}, {n})
  ON CONFLICT (organisation_id) DO UPDATE
  SET head_seq = sync_tenant_state.head_seq + {n}, updated_at = now()
  RETURNING head_seq - {n} AS base
), changed AS (
  SELECT c.* FROM jsonb_to_recordset({changes}) AS c(
    n bigint, entity text, entity_id uuid, op text, changed_fields text[], scope_keys uuid[],
    origin_client_id uuid, op_id uuid, field_meta jsonb)
), logged AS (
  INSERT INTO sync_change_log (organisation_id, seq, entity, entity_id, op, changed_fields,
                               scope_keys, origin_client_id, op_id)
  SELECT {org}, head.base + changed.n, changed.entity, changed.entity_id, changed.op,
         changed.changed_fields, changed.scope_keys, changed.origin_client_id, changed.op_id
  FROM head, changed
), stamped AS (
  INSERT INTO sync_rows (entity, entity_id, organisation_id, field_meta)
  SELECT changed.entity, changed.entity_id, {org},
         (SELECT jsonb_object_agg(f.key, f.value || jsonb_build_object('v', head.base + changed.n))
          FROM jsonb_each(changed.field_meta) AS f)
  FROM head, changed
  WHERE changed.field_meta IS NOT NULL
  ON CONFLICT (entity, entity_id) DO UPDATE
  SET field_meta = sync_rows.field_meta || excluded.field_meta
)
"""


def _changes_part(
    session: Session, organisation_id: uuid.UUID, entries: list[_Pending]
) -> bundle.Part | None:
    """Number and record the changes of one organisation (None: nothing left to record)."""
    # Resolve everything that may emit SQL (scopes) before the lock is taken.
    for entry in entries:
        if entry.row is None:
            # Only a child changed; the parent is usually in the identity map already.
            entry.row = session.get(entry.handler.model, entry.entity_id)
    entries = [entry for entry in entries if entry.row is not None]
    if not entries:
        return None
    metas = _field_stamps(session, entries)
    changes: list[dict[str, Any]] = []
    for number, (entry, meta) in enumerate(zip(entries, metas, strict=True), 1):
        handler, row = entry.handler, entry.row
        deleted = entry.deleted or handler.is_deleted(row)
        origin = entry.origin
        changes.append(
            {
                "n": number,
                "entity": handler.name,
                "entity_id": str(entry.entity_id),
                "op": "delete" if deleted else "upsert",
                "changed_fields": sorted(entry.fields),
                "scope_keys": []
                if entry.deleted
                else [str(k) for k in handler.scope(session, row)],
                "origin_client_id": str(origin.client_id) if origin and origin.client_id else None,
                "op_id": str(origin.op_id) if origin and origin.op_id else None,
                "field_meta": meta,
            }
        )
    return bundle.Part(
        _WRITE_CHANGES_CTES,
        {"org": organisation_id, "n": len(changes), "changes": Jsonb(changes)},
    )


def _field_stamps(session: Session, entries: list[_Pending]) -> list[dict[str, Any] | None]:
    """Per entry, per tracked field: the HLC and client of the write (the statement adds the
    change's ``seq`` as ``v``, the version a later guarded edit is compared with); None for
    an entry with no tracked field."""
    stamp = server_clock.tick()
    # Who is writing, when not a sync op (set by the API's authentication dependency).
    actor = session.info.get(ACTOR_LABEL)
    metas: list[dict[str, Any] | None] = []
    for entry in entries:
        handler = entry.handler
        tracked: dict[str, Origin | None] = {}
        for column, origin in entry.fields.items():
            name = handler.field_for_column(column)
            if name is not None:
                tracked[name] = origin
        if not tracked or entry.deleted:
            metas.append(None)
            continue
        metas.append(
            {
                name: {
                    "hlc": str(o.hlc if o else stamp),
                    "client": str(o.client_id) if o and o.client_id else None,
                    "by": o.actor if o else actor,
                }
                for name, o in tracked.items()
            }
        )
    return metas
