"""Reviewing and resolving sync conflicts: role-checked, idempotent, audited."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.service import audit_service
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.kit.errors import Conflict, Forbidden, InvalidInput, NotFound, check_version
from nidaan.kit.ids import new_id
from nidaan.kit.time import utcnow
from nidaan.sync import capture, sealing
from nidaan.sync.context import Op, OpContext
from nidaan.sync.entities.conflicts import conflict_view
from nidaan.sync.models import SyncConflict
from nidaan.sync.registry import Rejected, handler_for
from nidaan.sync.server_clock import server_clock


class Resolution(enum.StrEnum):
    KEEP_SERVER = "KEEP_SERVER"
    TAKE_CLIENT = "TAKE_CLIENT"
    MERGED = "MERGED"


#: Who may decide: clinical values need a pathologist; identity reviews the front desk.
RESOLVERS = {
    "CLINICAL_MANUAL": frozenset({Role.PATHOLOGIST}),
    "LWW_REVIEW": frozenset({Role.ADMIN, Role.FRONT_DESK}),
}


class AlreadyResolved(Conflict):
    code = "conflict_already_resolved"


class ConflictSuperseded(Conflict):
    code = "conflict_superseded"


def may_resolve(principal: Principal, kind: str) -> bool:
    return principal.has_any_role(*RESOLVERS.get(kind, frozenset()))


async def list_conflicts(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None = "OPEN",
    entity: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[SyncConflict], int]:
    """Conflicts in the caller's branches, of the kinds the caller may resolve (auditors and
    admins see all kinds)."""
    statement = select(SyncConflict).where(
        SyncConflict.organisation_id == principal.organisation_id
    )
    if status:
        statement = statement.where(SyncConflict.status == status.upper())
    if entity:
        statement = statement.where(SyncConflict.entity == entity)
    if not principal.has_any_role(Role.ADMIN, Role.AUDITOR):
        kinds = [kind for kind in RESOLVERS if may_resolve(principal, kind)]
        statement = statement.where(SyncConflict.kind.in_(kinds))
    if principal.branch_ids is not None:
        statement = statement.where(
            (SyncConflict.scope_keys == [])
            | SyncConflict.scope_keys.overlap(sorted(principal.branch_ids))
        )
    total = await session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = await session.scalars(
        statement.order_by(SyncConflict.created_at, SyncConflict.id).limit(limit).offset(offset)
    )
    return list(rows), total


async def get_conflict(
    session: AsyncSession, principal: Principal, conflict_id: uuid.UUID, *, lock: bool = False
) -> SyncConflict:
    statement = select(SyncConflict).where(
        SyncConflict.id == conflict_id, SyncConflict.organisation_id == principal.organisation_id
    )
    if lock:
        # Locked now: read what is committed, not the copy loaded earlier in this session.
        statement = statement.with_for_update().execution_options(populate_existing=True)
    row = await session.scalar(statement)
    if row is None:
        raise NotFound("No such sync conflict in your organisation.")
    outside = principal.branch_ids is not None and row.scope_keys
    if outside and not principal.branch_ids.intersection(row.scope_keys):  # type: ignore[union-attr]
        raise NotFound("No such sync conflict in your organisation.")
    return row


async def resolve(
    session: AsyncSession,
    principal: Principal,
    conflict_id: uuid.UUID,
    resolution: Resolution,
    *,
    reason: str,
    value: Any = None,
    expected_version: int | None = None,
) -> SyncConflict:
    """Decide a conflict. Repeating the same decision changes nothing; another decision on a
    resolved conflict is refused, and so is any decision on a superseded one (the field changed
    after the conflict opened: deciding it would undo that later change)."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why you resolve the conflict this way.", field="reason")
    row = await get_conflict(session, principal, conflict_id)
    if not may_resolve(principal, row.kind):
        needed = ", ".join(sorted(RESOLVERS.get(row.kind, ())))
        raise Forbidden(f"Only {needed} may resolve a {row.kind} conflict.")
    handler = handler_for(row.entity)
    ctx = OpContext(
        session=session,
        principal=principal,
        op=Op(new_id(), 0, row.entity, row.entity_id, "update", {}, ""),
        hlc=server_clock.tick(),
        client_id=None,
        received_at=utcnow(),
    )
    # The record first, then the conflict: a writer of the record supersedes the conflict at
    # its commit, so taking the locks in the same order as writers cannot deadlock with one.
    entity_row = await handler.load_for_update(ctx, row.entity_id)
    row = await get_conflict(session, principal, conflict_id, lock=True)
    values = sealing.conflict_values(row)
    target = {
        Resolution.KEEP_SERVER: values["server_value"],
        Resolution.TAKE_CLIENT: values["client_value"],
        Resolution.MERGED: value,
    }[resolution]
    if resolution is Resolution.MERGED:
        if value is None:
            raise InvalidInput("A merged resolution needs the merged value.", field="value")
        try:
            target = handler.normalize_fields({row.field: value})[row.field]
        except Rejected as error:
            raise InvalidInput(error.reason, field="value") from None
    if row.status == "SUPERSEDED":
        raise _superseded(row)
    if row.status != "OPEN":
        if row.resolution == resolution and values["resolution_value"] == target:
            return row
        raise AlreadyResolved(
            f"This conflict was already resolved ({row.resolution}).", resolution=row.resolution
        )
    check_version(row.version, expected_version, "conflict")
    if entity_row is None:
        raise NotFound(f"The {row.entity} of this conflict no longer exists.")
    current = handler.read_field(entity_row, row.field)
    if current != values["current_value"]:
        # Changed by a writer change capture did not see (bulk SQL): never decide against a
        # value the reviewer was not shown.
        raise _superseded(row, current)
    before = conflict_view(row)
    if current != target:
        capture.set_origin(
            session.sync_session, capture.Origin(None, None, ctx.hlc, principal.label)
        )
        try:
            await handler.before_update(ctx, entity_row)
            await handler.apply_fields(
                replace(ctx, op=replace(ctx.op, data={row.field: target})),
                entity_row,
                {row.field: target},
            )
            await session.flush()
        except Rejected as error:
            raise Conflict(error.reason) from None
        finally:
            capture.set_origin(session.sync_session, None)
    row.status = "RESOLVED"
    row.resolution = resolution.value
    sealing.set_conflict_values(row, resolution_value=target, current_value=target)
    row.resolution_reason = reason[:1000]
    row.resolved_by_id = principal.id if principal.kind == "user" else None
    row.resolved_at = utcnow()
    await session.flush()
    await audit_service.record(
        session,
        organisation_id=principal.organisation_id,
        actor=principal.actor,
        action="sync.conflict_resolved",
        entity_type="sync_conflict",
        entity_id=row.id,
        before=before,
        after=conflict_view(row),
    )
    return row


_STORED = object()


def _superseded(row: SyncConflict, current: Any = _STORED) -> ConflictSuperseded:
    shown = row.current_value if current is _STORED else _shown(row, current)
    return ConflictSuperseded(
        f"The {row.entity}'s {row.field} changed after this conflict opened (it now holds "
        f"{json.dumps(shown)}); there is nothing left to decide. Review the current value "
        "on the record itself.",
        current_value=shown,
    )


def _shown(row: SyncConflict, value: Any) -> Any:
    return (
        sealing.masked(row.field, value) if sealing.is_sensitive(row.entity, row.field) else value
    )
