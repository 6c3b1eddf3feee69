"""Applying an ``update`` op field by field, by each field's merge class (docs/sync.md).

* LWW: the higher (HLC, client id) wins; the losing value goes to field history.
* LWW_IDENTITY: as LWW, and when the op had not seen the stored value's change (a concurrent
  edit) a reviewable LWW_REVIEW conflict is opened as well — the name on a report must not
  change silently.
* GUARDED: applied only when no change to the field happened after ``baseVersion``;
  otherwise a CLINICAL_MANUAL conflict holds both values and nothing is merged.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from nidaan.sync import capture, prefetch, sealing
from nidaan.sync.context import OpContext
from nidaan.sync.hlc import HLC, HLCError
from nidaan.sync.models import SyncChange, SyncConflict, SyncRowMeta
from nidaan.sync.registry import EntityHandler, MergeClass, OpStatus, Outcome, Rejected

NEVER = HLC(0, 0, "")
#: The reason on an APPLIED update that found every field already at (or won by) another value.
NO_CHANGE = "no change: the fields already hold these values or newer ones"


async def field_meta(
    ctx: OpContext, handler: EntityHandler, entity_id: uuid.UUID
) -> dict[str, Any]:
    """Who wrote each field last: the committed stamps, overlaid with this transaction's own
    writes (an earlier op of the same push), so batching never changes an outcome."""
    meta = prefetch.stored_meta(ctx.session, handler.name, entity_id)
    if meta is None:
        meta = await ctx.session.scalar(
            select(SyncRowMeta.field_meta).where(
                SyncRowMeta.entity == handler.name, SyncRowMeta.entity_id == entity_id
            )
        )
    return {**(meta or {}), **capture.pending_stamps(ctx.session.sync_session, handler, entity_id)}


def _stored_hlc(meta: dict[str, Any] | None) -> HLC:
    if not meta or not meta.get("hlc"):
        return NEVER
    try:
        return HLC.parse(meta["hlc"])
    except HLCError:
        return NEVER


def _wins(
    incoming: HLC, client: str, stored: HLC, stored_client: str | None, *, own: bool = False
) -> bool:
    mine = (incoming.wall_ms, incoming.counter, client)
    theirs = (stored.wall_ms, stored.counter, stored_client or stored.node)
    # A device's ops apply in its own order; two of them clamped to the same server
    # millisecond compare equal, and the later one must still win.
    return mine >= theirs if own else mine > theirs


async def checked_fields(ctx: OpContext, handler: EntityHandler, row: Any) -> dict[str, Any]:
    """The update's fields, normalised; Rejected (before anything is written) when the update
    cannot apply at all."""
    await handler.before_update(ctx, row)
    incoming = handler.normalize_fields(ctx.data)
    if not incoming:
        raise Rejected("an update needs at least one field")
    unknown = sorted(set(incoming) - set(handler.fields))
    if unknown:
        raise Rejected(f"{handler.name} fields {unknown} cannot be changed by sync")
    return incoming


async def apply_update(
    ctx: OpContext, handler: EntityHandler, row: Any, checked: dict[str, Any] | None = None
) -> Outcome:
    """``checked``: what ``checked_fields`` returned for this op (not asked again)."""
    incoming = checked if checked is not None else await checked_fields(ctx, handler, row)
    meta = await field_meta(ctx, handler, row.id)
    client = str(ctx.client_id) if ctx.client_id else "server"
    base = ctx.op.base_version
    if base is not None and any(handler.fields[n] in VERSIONED for n in incoming):
        await _check_base_version(ctx, handler, row.id, base)
    to_apply: dict[str, Any] = {}
    reviews: dict[str, SyncConflict] = {}
    for name, value in incoming.items():
        merge_class = handler.fields[name]
        current = handler.read_field(row, name)
        stamp = meta.get(name)
        # A device always knows its own last write: that is never a concurrent edit.
        own_write = bool(stamp and ctx.client_id and stamp.get("client") == str(ctx.client_id))
        changed_after_base = not own_write and _changed_after(stamp, base)
        if merge_class is MergeClass.GUARDED:
            if base is None and not own_write:
                raise Rejected(f"{handler.name}.{name} is guarded: send the baseVersion you edited")
            if value == current:
                continue
            if changed_after_base:
                await open_conflict(
                    ctx, handler, row, name, current, value, stamp, "CLINICAL_MANUAL"
                )
            else:
                to_apply[name] = value
            continue
        stored_hlc = _stored_hlc(stamp)
        wins = _wins(ctx.hlc, client, stored_hlc, (stamp or {}).get("client"), own=own_write)
        if value == current:
            if wins:
                # Same value, later clock: the field's clock must still move on, or an older
                # write arriving afterwards would beat this one (lost write, spec §4.3).
                await _restamp(ctx, handler, row, name, client, stamp)
            continue
        if wins:
            to_apply[name] = value
            _history(ctx, handler, row, name, current, str(stored_hlc), stamp, "overwritten")
        else:
            _history(ctx, handler, row, name, value, str(ctx.hlc), None, "lost")
        if merge_class is MergeClass.LWW_IDENTITY and changed_after_base:
            review = await open_conflict(
                ctx, handler, row, name, current, value, stamp, "LWW_REVIEW", applied=wins
            )
            if wins:
                reviews[name] = review
    if to_apply:
        await handler.apply_fields(ctx, row, to_apply)
    for name, review in reviews.items():
        # The value as the owning service stored it (it may tidy what it was given).
        sealing.set_conflict_values(review, current_value=handler.read_field(row, name))
    if ctx.conflicts:
        return Outcome(OpStatus.CONFLICT, conflict_ids=list(ctx.conflicts))
    if not to_apply:
        return Outcome(OpStatus.APPLIED, reason=NO_CHANGE)
    return Outcome.applied()


async def _restamp(
    ctx: OpContext,
    handler: EntityHandler,
    row: Any,
    name: str,
    client: str,
    stamp: dict[str, Any] | None,
) -> None:
    meta = {
        name: {
            "hlc": str(ctx.hlc),
            "client": client if ctx.client_id else None,
            "v": (stamp or {}).get("v"),  # the value did not change: guards are unaffected
            "by": (stamp or {}).get("by"),
        }
    }
    prefetch.stamps_written(ctx.session, handler.name, row.id)
    statement = pg_insert(SyncRowMeta).values(
        entity=handler.name,
        entity_id=row.id,
        organisation_id=ctx.principal.organisation_id,
        field_meta=meta,
    )
    await ctx.session.execute(
        statement.on_conflict_do_update(
            index_elements=[SyncRowMeta.entity, SyncRowMeta.entity_id],
            set_={"field_meta": SyncRowMeta.field_meta.op("||")(statement.excluded.field_meta)},
        )
    )


#: Merge classes that compare the op's ``baseVersion`` with the field's version.
VERSIONED = frozenset({MergeClass.GUARDED, MergeClass.LWW_IDENTITY})


async def _check_base_version(
    ctx: OpContext, handler: EntityHandler, entity_id: uuid.UUID, base: int
) -> None:
    """A base version is a change ``seq`` the server issued for this row. One it never issued
    (from the future, or below 1) would pass every "changed after" check: refuse it."""
    latest = await ctx.session.scalar(
        select(func.max(SyncChange.seq)).where(
            SyncChange.organisation_id == ctx.principal.organisation_id,
            SyncChange.entity == handler.name,
            SyncChange.entity_id == entity_id,
        )
    )
    if base < 1 or base > (latest or 0):
        raise Rejected(
            f"baseVersion {base} was never issued for this {handler.name} (its latest version "
            f"is {latest or 0}): pull again and edit the current value"
        )


def _changed_after(stamp: dict[str, Any] | None, base: int | None) -> bool:
    """Did the field change after the row version (change seq) the client edited?"""
    if base is None or not stamp or stamp.get("v") is None:
        return False
    return int(stamp["v"]) > base


def _history(
    ctx: OpContext,
    handler: EntityHandler,
    row: Any,
    name: str,
    value: Any,
    hlc: str,
    stamp: dict[str, Any] | None,
    outcome: str,
) -> None:
    client = stamp.get("client") if stamp else (str(ctx.client_id) if ctx.client_id else None)
    ctx.session.add(
        sealing.history_row(
            handler.name,
            name,
            value,
            organisation_id=ctx.principal.organisation_id,
            entity_id=row.id,
            hlc=hlc,
            client_id=uuid.UUID(client) if client and outcome == "overwritten" else ctx.client_id,
            op_id=ctx.op.op_id,
            outcome=outcome,
        )
    )


async def open_conflict(
    ctx: OpContext,
    handler: EntityHandler,
    row: Any,
    name: str,
    server_value: Any,
    client_value: Any,
    stamp: dict[str, Any] | None,
    kind: str,
    *,
    applied: bool = False,
) -> SyncConflict:
    existing = await ctx.session.scalar(
        select(SyncConflict).where(SyncConflict.op_id == ctx.op.op_id, SyncConflict.field == name)
    )
    if existing is not None:
        ctx.conflicts.append(existing.id)
        return existing
    # run_sync: a handler's scope may load rows (a result's order), which needs the greenlet.
    scope_keys = await ctx.session.run_sync(lambda s: handler.scope(s, row))
    conflict = SyncConflict(
        organisation_id=ctx.principal.organisation_id,
        entity=handler.name,
        entity_id=row.id,
        field=name,
        kind=kind,
        status="OPEN",
        base_version=ctx.op.base_version,
        server_version=(stamp or {}).get("v"),
        server_changed_by=_who(stamp),
        server_changed_at=_when(stamp),
        client_changed_by=ctx.principal.label,
        client_changed_at=_hlc_time(ctx.hlc),
        client_user_id=ctx.principal.id if ctx.principal.kind == "user" else None,
        client_id=ctx.client_id,
        op_id=ctx.op.op_id,
        scope_keys=scope_keys,
        resolution=None,
        resolution_reason="auto-applied, for review" if applied else None,
    )
    sealing.set_conflict_values(
        conflict,
        server_value=server_value,
        client_value=client_value,
        current_value=client_value if applied else server_value,
    )
    ctx.session.add(conflict)
    await ctx.session.flush()
    ctx.conflicts.append(conflict.id)
    return conflict


def _who(stamp: dict[str, Any] | None) -> str | None:
    if not stamp:
        return None
    if stamp.get("by"):
        return str(stamp["by"])
    return f"sync client {stamp['client']}" if stamp.get("client") else "lab (server)"


def _hlc_time(hlc: HLC) -> datetime | None:
    return datetime.fromtimestamp(hlc.wall_ms / 1000, tz=UTC) if hlc.wall_ms else None


def _when(stamp: dict[str, Any] | None) -> datetime | None:
    hlc = _stored_hlc(stamp)
    return _hlc_time(hlc)
