"""The sync service: bind devices, apply pushed ops (docs/sync.md §3.5), pull, status.

Each op runs in its own savepoint (or, for runs of independent ops, under one savepoint with
set-based writes that give the same outcomes), so a rejected op leaves nothing behind while
its neighbours apply; its terminal result and the client's sequence are written in the same
transaction as the effects. The caller commits the push before pulling, so the pull carries
the push's own changes (their sequence numbers are assigned at commit).
"""

from __future__ import annotations

import json
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, inspect, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from nidaan.auth.principal import Principal
from nidaan.config import Settings
from nidaan.kit.errors import Forbidden, InvalidInput, NidaanError
from nidaan.kit.ids import new_id
from nidaan.kit.metrics import SYNC_OPS, SYNC_REQUESTS
from nidaan.kit.time import utcnow
from nidaan.sync import batch, capture, prefetch
from nidaan.sync.context import Op, OpContext
from nidaan.sync.hlc import HLC, HLCError, now_ms
from nidaan.sync.merge import apply_update, checked_fields
from nidaan.sync.models import (
    SyncAppliedOp,
    SyncChange,
    SyncClient,
    SyncConflict,
    SyncTenantState,
)
from nidaan.sync.protocol import (
    PROTOCOL_VERSION,
    PULL_LIMIT_DEFAULT,
    PULL_LIMIT_MAX,
    PUSH_LIMIT,
    SCHEMA_MAX,
    SCHEMA_MIN,
    Cursor,
    scope_tag,
    upcast,
)
from nidaan.sync.registry import (
    BY_MODEL,
    REGISTRY,
    EntityHandler,
    OpStatus,
    Outcome,
    Rejected,
    handler_for,
)
from nidaan.sync.server_clock import server_clock
from nidaan.tenancy.service import tenancy_service

_log = structlog.get_logger("nidaan.sync")


class ClientMismatch(Forbidden):
    code = "sync_client_mismatch"


@dataclass
class OpResult:
    op_id: uuid.UUID
    status: OpStatus
    entity: str | None = None
    entity_id: uuid.UUID | None = None
    reason: str | None = None
    conflict_ids: list[uuid.UUID] = field(default_factory=list)
    expected_seq: int | None = None

    @property
    def conflict_id(self) -> uuid.UUID | None:
        return self.conflict_ids[0] if self.conflict_ids else None


@dataclass
class Change:
    seq: int
    entity: str
    entity_id: uuid.UUID
    deleted: bool
    data: dict[str, Any] | None


@dataclass
class PullPage:
    changes: list[Change]
    cursor: Cursor
    has_more: bool
    reset: bool = False


@dataclass
class SyncStatus:
    head_seq: int
    pulled_seq: int
    lag: int
    acknowledged_ops: int
    last_client_seq: int
    open_conflicts: int
    last_sync_at: datetime | None
    tombstone_horizon_seq: int
    tombstone_horizon_days: int
    epoch: int
    schema_min: int
    schema_max: int
    clock_suspect: bool


# ---- devices ---------------------------------------------------------------------------


def client_scope(principal: Principal, client: SyncClient | None) -> list[uuid.UUID] | None:
    """Branches a device sees: its branch, else the user's branches (None: all)."""
    if client is not None and client.branch_id is not None:
        return [client.branch_id]
    return None if principal.branch_ids is None else sorted(principal.branch_ids)


async def bind_client(
    session: AsyncSession,
    principal: Principal,
    client_id: uuid.UUID,
    branch_id: uuid.UUID | None,
    schema_version: int,
) -> SyncClient:
    """The device row, locked for this call; created on first use and bound to the caller."""
    if principal.kind != "user":
        raise Forbidden("Sync clients authenticate as a user, not with an API key.")
    client = await session.scalar(
        select(SyncClient).where(SyncClient.id == client_id).with_for_update()
    )
    bound_here = (
        client is not None
        and client.branch_id == branch_id
        and client.organisation_id == principal.organisation_id
    )
    if branch_id is not None and not bound_here:
        # Another organisation's branch is "not found", like any of its records. (The
        # branch a device of this organisation is bound to was checked when it was bound.)
        await tenancy_service.get_branch(session, principal, branch_id)
    if client is None:
        one = principal.branch_ids is not None and len(principal.branch_ids) == 1
        if branch_id is None and one:
            branch_id = next(iter(principal.branch_ids))  # type: ignore[arg-type]
        if branch_id is not None and not principal.may_use_branch(branch_id):
            raise Forbidden("You do not work at that branch.")
        # Two first calls of one device may race: one inserts, both then lock the row.
        await session.execute(
            pg_insert(SyncClient)
            .values(
                id=client_id,
                organisation_id=principal.organisation_id,
                user_id=principal.id,
                branch_id=branch_id,
                schema_version=schema_version,
            )
            .on_conflict_do_nothing(index_elements=[SyncClient.id])
        )
        client = await session.scalar(
            select(SyncClient)
            .where(SyncClient.id == client_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert client is not None
    if client.organisation_id != principal.organisation_id or client.user_id != principal.id:
        raise ClientMismatch(
            "This sync client id belongs to another user. Sign in as that user, or reset the "
            "device's local copy (a new client id)."
        )
    if branch_id is not None and branch_id != client.branch_id:
        if not principal.may_use_branch(branch_id):
            raise Forbidden("You do not work at that branch.")
        client.branch_id = branch_id  # the next pull resets: the scope changed
    client.schema_version = schema_version
    return client


# ---- push ------------------------------------------------------------------------------


def _groups(ops: Sequence[Op]) -> list[list[Op]]:
    """Consecutive ops sharing a transaction group apply together; others alone."""
    groups: list[list[Op]] = []
    for op in ops:
        if groups and op.tx_group is not None and groups[-1][-1].tx_group == op.tx_group:
            groups[-1].append(op)
        else:
            groups.append([op])
    return groups


class SyncService:
    async def push(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        client: SyncClient,
        ops: Sequence[Op],
        schema_version: int,
    ) -> list[OpResult]:
        if len(ops) > PUSH_LIMIT:
            raise InvalidInput(f"Send at most {PUSH_LIMIT} ops per call.", field="ops")
        ordered = sorted(ops, key=lambda o: o.client_seq)
        known = await self._stored_results(session, client.id, [op.op_id for op in ordered])
        await prefetch.read_ahead(
            session, principal.organisation_id, [op for op in ordered if op.op_id not in known]
        )
        state = _Batch(last_seq=client.last_client_seq)
        results: list[OpResult] = []
        gap_at: int | None = None
        groups = _groups(ordered)
        index = 0
        while index < len(groups):
            group = groups[index]
            if gap_at is not None:
                results.extend(
                    OpResult(op.op_id, OpStatus.GAP, op.entity, op.entity_id, expected_seq=gap_at)
                    for op in group
                )
                index += 1
                continue
            run = _run_of_single_ops(groups, index)
            if len(run) > 1:
                optimistic = await self._apply_run(
                    session, settings, principal, client, run, known, schema_version, state
                )
                if optimistic is not None:
                    results.extend(optimistic)
                    gap_at = next(
                        (r.expected_seq for r in optimistic if r.status is OpStatus.GAP), None
                    )
                    index += len(run)
                    continue
            try:
                group_results = await self._apply_group(
                    session, settings, principal, client, group, known, schema_version, state
                )
            except _Transient:
                break
            for result in group_results:
                if result.status is OpStatus.GAP:
                    gap_at = result.expected_seq
            results.extend(group_results)
            index += 1
        prefetch.forget(session)
        # Terminal results and the device's sequence go in with the effects, in one statement
        # each rather than one per op.
        client.last_client_seq = state.last_seq
        client.acknowledged_ops += len(state.applied)
        client.last_sync_at = utcnow()
        await _record_push(session, client, state.applied)
        await session.flush()
        SYNC_REQUESTS.labels("push").inc()
        for result in results:
            SYNC_OPS.labels(result.status.value.lower()).inc()
        return results

    async def _stored_results(
        self, session: AsyncSession, client_id: uuid.UUID, op_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, OpResult]:
        if not op_ids:
            return {}
        rows = await session.scalars(
            select(SyncAppliedOp).where(
                SyncAppliedOp.client_id == client_id, SyncAppliedOp.op_id.in_(op_ids)
            )
        )
        return {
            row.op_id: OpResult(
                row.op_id,
                OpStatus(row.status),
                row.entity,
                row.entity_id,
                row.reason,
                [row.conflict_id] if row.conflict_id else [],
            )
            for row in rows
        }

    async def _apply_group(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        client: SyncClient,
        group: list[Op],
        known: dict[uuid.UUID, OpResult],
        schema_version: int,
        batch: _Batch,
    ) -> list[OpResult]:
        results: list[OpResult] = []
        fresh: list[Op] = []
        for op in group:
            stored = known.get(op.op_id)
            expected = batch.last_seq + len(fresh) + 1
            if stored is not None:
                results.append(stored)  # a replay answers exactly as the first time
            elif op.client_seq < expected:
                results.append(
                    OpResult(
                        op.op_id,
                        OpStatus.DUPLICATE,
                        op.entity,
                        op.entity_id,
                        reason=f"client sequence {op.client_seq} was already used",
                    )
                )
            elif op.client_seq > expected:
                results.append(
                    OpResult(op.op_id, OpStatus.GAP, op.entity, op.entity_id, expected_seq=expected)
                )
                break
            else:
                fresh.append(op)
        if not fresh:
            return results
        # A lone op is isolated by its own savepoint; a group needs one around all of it.
        group_savepoint = await session.begin_nested() if len(fresh) > 1 else None
        outcomes: list[tuple[Op, Outcome]] = []
        op = fresh[0]
        try:
            for op in fresh:
                outcome = await self._apply_one(
                    session, settings, principal, client, op, schema_version
                )
                outcomes.append((op, outcome))
        except Exception as error:
            if group_savepoint is not None:
                await _rollback(session, group_savepoint, client)
            if _is_contention(error):
                # Two devices touching the same rows at once; the client retries shortly.
                _log.warning("sync_op_contention", client_id=str(client.id), op_id=str(op.op_id))
            else:
                # Where it failed, never the message: a database error's message carries the
                # statement's parameters (a patient's e-mail, a mobile number).
                _log.error(
                    "sync_op_failed",
                    client_id=str(client.id),
                    op_id=str(op.op_id),
                    entity=op.entity,
                    operation=op.operation,
                    error=_error_kind(error),
                    stack=traceback.format_tb(error.__traceback__)[-8:],
                )
            raise _Transient() from None
        rejected = next((o for _, o in outcomes if o.status is OpStatus.REJECTED), None)
        if group_savepoint is not None and rejected is not None:
            # A transaction group applies all or nothing.
            await _rollback(session, group_savepoint, client)
            outcomes = [
                (
                    op,
                    outcome
                    if outcome.status is OpStatus.REJECTED
                    else Outcome(
                        OpStatus.REJECTED,
                        reason=f"rolled back with its transaction group: {rejected.reason}",
                    ),
                )
                for op, outcome in outcomes
            ]
        elif group_savepoint is not None:
            await group_savepoint.commit()
        for op, outcome in outcomes:
            result = OpResult(
                op.op_id,
                outcome.status,
                op.entity,
                op.entity_id,
                outcome.reason,
                list(outcome.conflict_ids),
            )
            batch.applied.append(_applied_row(client, op, result))
            batch.last_seq = op.client_seq
            results.append(result)
        return results

    async def _apply_run(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        client: SyncClient,
        run: list[Op],
        known: dict[uuid.UUID, OpResult],
        schema_version: int,
        batch_state: _Batch,
    ) -> list[OpResult] | None:
        """Apply consecutive independent ops under one savepoint instead of one each.

        Patient registrations and edits are prepared op by op and written together
        (``nidaan.sync.batch``); one of them refused before it wrote anything answers
        REJECTED and the others apply. Any other op that is rejected, and anything that
        fails, rolls the whole run back and the caller applies the same ops one by one, each
        in its own savepoint, exactly as before; so the outcomes never depend on this
        shortcut. None: fall back.
        """
        savepoint = await session.begin_nested()
        batch.start(session)
        results: list[OpResult] = []
        applied: list[tuple[Op, OpResult]] = []
        last_seq = batch_state.last_seq
        try:
            for op in run:
                stored = known.get(op.op_id)
                expected = last_seq + 1
                if stored is not None:
                    results.append(stored)  # a replay answers exactly as the first time
                    continue
                if op.client_seq != expected:
                    raise _Fallback  # duplicate or gap: the op-by-op path answers those
                if batch.waits(op):
                    outcome = await self._apply_deferred(
                        session, settings, principal, client, op, schema_version
                    )
                else:
                    await batch.write(session)  # it must see the database as one by one
                    outcome = await self._apply_unguarded(
                        session, settings, principal, client, op, schema_version
                    )
                result = OpResult(
                    op.op_id,
                    outcome.status,
                    op.entity,
                    op.entity_id,
                    outcome.reason,
                    list(outcome.conflict_ids),
                )
                applied.append((op, result))
                results.append(result)
                last_seq = op.client_seq
            await batch.write(session)
            await session.flush()
        except Exception:
            batch.discard(session)
            await _rollback(session, savepoint, client)
            return None
        finally:
            batch.stop(session)
        await savepoint.commit()
        batch_state.applied.extend(_applied_row(client, op, result) for op, result in applied)
        batch_state.last_seq = last_seq
        return results

    async def _apply_deferred(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        client: SyncClient | None,
        op: Op,
        schema_version: int,
    ) -> Outcome:
        """A patient registration or edit whose writes wait for the run's set-based write.

        What refuses the op before anything is written (validation, permission, unknown row,
        scope) answers REJECTED here, with the reason the one-by-one path gives; anything
        raised later rolls the run back (the caller then applies it op by op)."""
        sync_session = session.sync_session
        try:
            ctx = self._context(session, settings, principal, client, op, schema_version)
        except Rejected as error:
            return Outcome(OpStatus.REJECTED, reason=error.reason)
        capture.set_origin(
            sync_session,
            capture.Origin(client.id if client else None, op.op_id, ctx.hlc, actor=principal.label),
        )
        try:
            try:
                handler = _permitted(ctx)
                if op.operation == "create":
                    return await handler.create(ctx)
                row = await _row_in_scope(ctx, handler)
                incoming = await checked_fields(ctx, handler, row)
            except (Rejected, NidaanError) as error:
                reason = error.reason if isinstance(error, Rejected) else error.detail
                return Outcome(OpStatus.REJECTED, reason=reason)
            outcome = await apply_update(ctx, handler, row, incoming)
            if any(type(obj) in BY_MODEL for obj in session.dirty):
                # A synced row the op changed through the ORM (an identity review's value) is
                # captured under this op's origin, as the flush after each op did.
                await session.flush()
            return outcome
        finally:
            capture.set_origin(sync_session, None)

    async def _apply_unguarded(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        client: SyncClient | None,
        op: Op,
        schema_version: int,
    ) -> Outcome:
        """One op with no savepoint of its own (``_apply_run`` holds one around many)."""
        sync_session = session.sync_session
        try:
            ctx = self._context(session, settings, principal, client, op, schema_version)
            capture.set_origin(
                sync_session,
                capture.Origin(
                    client.id if client else None, op.op_id, ctx.hlc, actor=principal.label
                ),
            )
            outcome = await self._dispatch(ctx)
            await session.flush()
        finally:
            capture.set_origin(sync_session, None)
        return outcome

    async def _apply_one(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        client: SyncClient | None,
        op: Op,
        schema_version: int,
    ) -> Outcome:
        """One op in its own savepoint: REJECTED leaves no trace; other errors propagate."""
        sync_session = session.sync_session
        # Rolling the savepoint back also drops what capture saw inside it (capture.py).
        savepoint = await session.begin_nested()
        try:
            ctx = self._context(session, settings, principal, client, op, schema_version)
            capture.set_origin(
                sync_session,
                capture.Origin(
                    client.id if client else None, op.op_id, ctx.hlc, actor=principal.label
                ),
            )
            outcome = await self._dispatch(ctx)
            await session.flush()
        except (Rejected, NidaanError) as error:
            await _rollback(session, savepoint, client)
            reason = error.reason if isinstance(error, Rejected) else error.detail
            return Outcome(OpStatus.REJECTED, reason=reason)
        except Exception as error:
            await _rollback(session, savepoint, client)
            refusal = _permanent_refusal(error)
            if refusal is None:
                raise
            # The database refused a value no validation caught (too long, out of range): the
            # same op would fail on every retry, so it must not block the device's queue.
            _log.warning(
                "sync_op_refused_by_database",
                op_id=str(op.op_id),
                entity=op.entity,
                operation=op.operation,
                error=_error_kind(error),
            )
            return Outcome(OpStatus.REJECTED, reason=refusal)
        finally:
            capture.set_origin(sync_session, None)
        await savepoint.commit()
        return outcome

    def _context(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        client: SyncClient | None,
        op: Op,
        call_schema: int,
    ) -> OpContext:
        schema = op.schema_version or call_schema
        if schema < SCHEMA_MIN or schema > SCHEMA_MAX:
            raise Rejected(
                f"op was queued under schema {schema}; this server accepts {SCHEMA_MIN}-"
                f"{SCHEMA_MAX}"
            )
        data = upcast(schema, op.entity, op.operation, dict(op.data))
        node = str(client.id) if client else "server"
        try:
            stamp = HLC.parse(op.hlc).with_node(node) if op.hlc else server_clock.tick()
        except HLCError as error:
            raise Rejected(str(error)) from None
        now = now_ms()
        ahead = stamp.wall_ms - now
        if ahead > settings.sync_max_drift_seconds * 1000:
            # A device clock far in the future would win every merge for days: clamp it to
            # now and flag the device so someone fixes its clock.
            stamp = HLC(now, 0, node)
            if client is not None:
                client.clock_suspect = True
                client.max_clock_ahead_ms = max(client.max_clock_ahead_ms, ahead)
        server_clock.receive(stamp)
        return OpContext(
            session=session,
            principal=principal,
            op=Op(
                op.op_id,
                op.client_seq,
                op.entity,
                op.entity_id,
                op.operation,
                data,
                op.hlc,
                op.base_version,
                schema,
                op.tx_group,
            ),
            hlc=stamp,
            client_id=client.id if client else None,
            received_at=utcnow(),
        )

    async def _dispatch(self, ctx: OpContext) -> Outcome:
        op = ctx.op
        handler = _permitted(ctx)
        if op.operation == "create":
            return await handler.create(ctx)
        if op.operation == "append":
            return await handler.append(ctx)
        row = await _row_in_scope(ctx, handler)
        if op.operation == "update":
            return await apply_update(ctx, handler, row)
        if op.operation == "transition":
            return await handler.transition(ctx, row)
        if op.operation == "delete":
            return await handler.delete(ctx, row)
        return await handler.operate(ctx, row)

    async def queue_operation(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        entity: str,
        operation: str,
        data: dict[str, Any],
        entity_id: uuid.UUID | None,
        base_version: int | None,
    ) -> OpResult:
        """One op for an always-online caller: same apply path, no device and no outbox."""
        op = Op(
            op_id=new_id(),
            client_seq=0,
            entity=entity,
            entity_id=entity_id or new_id(),
            operation=operation,
            data=data,
            hlc="",
            base_version=base_version,
        )
        outcome = await self._apply_one(session, settings, principal, None, op, SCHEMA_MAX)
        return OpResult(
            op.op_id, outcome.status, entity, op.entity_id, outcome.reason, outcome.conflict_ids
        )

    # ---- pull --------------------------------------------------------------------------

    async def tenant_state(
        self, session: AsyncSession, organisation_id: uuid.UUID
    ) -> SyncTenantState:
        state = await session.get(SyncTenantState, organisation_id, populate_existing=True)
        return state or SyncTenantState(
            organisation_id=organisation_id, head_seq=0, epoch=1, tombstone_horizon_seq=0
        )

    async def pull(
        self,
        session: AsyncSession,
        principal: Principal,
        client: SyncClient | None,
        cursor: Cursor | None,
        limit: int | None,
    ) -> PullPage:
        org = principal.organisation_id
        scope = client_scope(principal, client)
        tag = scope_tag(scope)
        state = await self.tenant_state(session, org)
        head = state.head_seq
        if cursor is not None and (
            cursor.epoch != state.epoch
            or cursor.seq < state.tombstone_horizon_seq
            or cursor.scope != tag
            or cursor.seq > head
        ):
            SYNC_REQUESTS.labels("pull_reset").inc()
            return PullPage([], Cursor(state.epoch, 0, tag), has_more=True, reset=True)
        since = cursor.seq if cursor else 0
        size = min(max(limit or PULL_LIMIT_DEFAULT, 1), PULL_LIMIT_MAX)
        found = (
            await session.execute(
                text(
                    "SELECT c.seq, c.entity, c.entity_id, c.op FROM sync_change_log c "
                    "WHERE c.organisation_id = :org AND c.seq > :since AND c.seq <= :head "
                    "AND (CAST(:all AS boolean) OR c.scope_keys = '{}' "
                    "     OR c.scope_keys && CAST(:scope AS uuid[])) "
                    "AND NOT EXISTS (SELECT 1 FROM sync_change_log l "
                    "  WHERE l.organisation_id = c.organisation_id AND l.entity = c.entity "
                    "  AND l.entity_id = c.entity_id AND l.seq > c.seq AND l.seq <= :head) "
                    "ORDER BY c.seq LIMIT :limit"
                ),
                {
                    "org": org,
                    "since": since,
                    "head": head,
                    "all": scope is None,
                    "scope": [str(b) for b in scope or []],
                    "limit": size + 1,
                },
            )
        ).all()
        has_more = len(found) > size
        found = found[:size]
        changes = await self._materialise(session, org, found)
        last = found[-1].seq if has_more else head
        if client is not None:
            client.last_pull_seq = max(client.last_pull_seq, last)
            client.last_sync_at = utcnow()
        SYNC_REQUESTS.labels("pull").inc()
        return PullPage(changes, Cursor(state.epoch, last, tag), has_more)

    async def _materialise(
        self, session: AsyncSession, org: uuid.UUID, found: Sequence[Any]
    ) -> list[Change]:
        wanted: dict[str, list[uuid.UUID]] = {}
        for row in found:
            if row.op != "delete":
                wanted.setdefault(row.entity, []).append(row.entity_id)
        views: dict[tuple[str, uuid.UUID], dict[str, Any]] = {}
        for entity, ids in wanted.items():
            handler = REGISTRY.get(entity)
            if handler is None:
                continue
            model = handler.model
            rows = list(
                await session.scalars(
                    select(model)
                    .where(model.id.in_(ids), model.organisation_id == org)
                    # The push before this pull may have loaded older copies of these rows.
                    .execution_options(populate_existing=True)
                )
            )
            live = [r for r in rows if not handler.is_deleted(r)]
            for row, view in zip(live, await handler.serialize_many(session, live), strict=True):
                views[(entity, row.id)] = view
        return [
            Change(
                seq=row.seq,
                entity=row.entity,
                entity_id=row.entity_id,
                deleted=(row.entity, row.entity_id) not in views,
                data=views.get((row.entity, row.entity_id)),
            )
            for row in found
        ]

    # ---- status ------------------------------------------------------------------------

    async def status(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        client: SyncClient | None,
        entity: str | None,
    ) -> SyncStatus:
        state = await self.tenant_state(session, principal.organisation_id)
        open_conflicts = (
            select(func.count())
            .select_from(SyncConflict)
            .where(
                SyncConflict.organisation_id == principal.organisation_id,
                SyncConflict.status == "OPEN",
            )
        )
        if entity:
            open_conflicts = open_conflicts.where(SyncConflict.entity == entity)
        scope = client_scope(principal, client)
        if scope is not None:
            open_conflicts = open_conflicts.where(
                (SyncConflict.scope_keys == []) | SyncConflict.scope_keys.overlap(scope)
            )
        head = state.head_seq
        if entity:
            head = (
                await session.scalar(
                    select(func.max(SyncChange.seq)).where(
                        SyncChange.organisation_id == principal.organisation_id,
                        SyncChange.entity == entity,
                    )
                )
                or 0
            )
        pulled = client.last_pull_seq if client else 0
        return SyncStatus(
            head_seq=head,
            pulled_seq=pulled,
            lag=max(head - pulled, 0),
            acknowledged_ops=client.acknowledged_ops if client else 0,
            last_client_seq=client.last_client_seq if client else 0,
            open_conflicts=await session.scalar(open_conflicts) or 0,
            last_sync_at=client.last_sync_at if client else None,
            tombstone_horizon_seq=state.tombstone_horizon_seq,
            tombstone_horizon_days=settings.sync_tombstone_days,
            epoch=state.epoch,
            schema_min=SCHEMA_MIN,
            schema_max=SCHEMA_MAX,
            clock_suspect=client.clock_suspect if client else False,
        )

    async def get_client(
        self, session: AsyncSession, principal: Principal, client_id: uuid.UUID | None
    ) -> SyncClient | None:
        if client_id is None:
            return None
        client = await session.get(SyncClient, client_id)
        if client is None or client.organisation_id != principal.organisation_id:
            return None
        if client.user_id != principal.id:
            raise ClientMismatch("This sync client id belongs to another user.")
        return client

    # ---- maintenance -------------------------------------------------------------------

    async def compact(self, session: AsyncSession, settings: Settings) -> dict[str, int]:
        """Keep the latest change per row; forget tombstones and applied ops past the
        horizon (clients with older cursors reset)."""
        superseded = await session.execute(
            text(
                "DELETE FROM sync_change_log c USING sync_change_log l "
                "WHERE l.organisation_id = c.organisation_id AND l.entity = c.entity "
                "AND l.entity_id = c.entity_id AND l.seq > c.seq"
            )
        )
        horizon = utcnow() - timedelta(days=settings.sync_tombstone_days)
        forgotten = await session.execute(
            text(
                "WITH gone AS (DELETE FROM sync_change_log WHERE op = 'delete' "
                "AND committed_at < :horizon RETURNING organisation_id, seq) "
                "UPDATE sync_tenant_state s SET tombstone_horizon_seq = g.max_seq "
                "FROM (SELECT organisation_id, max(seq) AS max_seq FROM gone "
                "GROUP BY organisation_id) g "
                "WHERE s.organisation_id = g.organisation_id "
                "AND s.tombstone_horizon_seq < g.max_seq"
            ),
            {"horizon": horizon},
        )
        applied = await session.execute(
            text("DELETE FROM sync_applied_ops WHERE applied_at < :horizon"), {"horizon": horizon}
        )
        return {
            "superseded_changes": superseded.rowcount,  # type: ignore[attr-defined]
            "organisations_past_horizon": forgotten.rowcount,  # type: ignore[attr-defined]
            "applied_ops_forgotten": applied.rowcount,  # type: ignore[attr-defined]
        }

    async def bump_epoch(self, session: AsyncSession, organisation_id: uuid.UUID | None) -> int:
        """After a restore: every device's cursor is void, so each resets and re-pulls.

        Every organisation moves, also one without a sync state row yet (its devices were
        handed epoch 1, the default): the row is made first, then every row is bumped.
        """
        params: dict[str, Any] = {"org": organisation_id}
        missing = "SELECT id, 0, 1, 0 FROM organisations"
        bump = "UPDATE sync_tenant_state SET epoch = epoch + 1"
        if organisation_id is not None:
            missing += " WHERE id = :org"
            bump += " WHERE organisation_id = :org"
        await session.execute(
            text(
                "INSERT INTO sync_tenant_state (organisation_id, head_seq, epoch, "
                f"tombstone_horizon_seq) {missing} ON CONFLICT (organisation_id) DO NOTHING"
            ),
            params,
        )
        result = await session.execute(text(bump), params)
        return result.rowcount  # type: ignore[attr-defined,no-any-return]


async def _rollback(session: AsyncSession, savepoint: Any, client: SyncClient | None) -> None:
    """Roll a savepoint back without leaving the device row expired.

    SQLAlchemy expires objects changed inside a rolled-back savepoint; the device row is (its
    clock flag is set while an op applies), and reloading it lazily is impossible under asyncio
    (MissingGreenlet). Reload it now and keep the clock flag: a bad clock stays a bad clock.
    """
    flags = (client.clock_suspect, client.max_clock_ahead_ms) if client is not None else None
    # Rows read ahead may be expired now, and stamps written inside are gone.
    prefetch.forget(session)
    await savepoint.rollback()
    if client is not None and flags is not None:
        await session.refresh(client)
        client.clock_suspect, client.max_clock_ahead_ms = flags


def _permitted(ctx: OpContext) -> EntityHandler:
    """The op's entity handler, if the caller's role may send this op."""
    op = ctx.op
    handler = handler_for(op.entity)
    roles = handler.operations.get(op.operation)
    if roles is None:
        raise Rejected(f"{op.entity} does not take '{op.operation}' ops")
    if not ctx.principal.has_any_role(*roles):
        raise Rejected(f"forbidden: your role may not {op.operation} a {op.entity}")
    return handler


async def _row_in_scope(ctx: OpContext, handler: EntityHandler) -> Any:
    """The row the op acts on, locked, if the caller may see it."""
    op = ctx.op
    row = prefetch.locked_row(ctx.session, op.entity, op.entity_id)
    if row is None:
        # Not read ahead: pending writes go first, as the row may be among them.
        await batch.write(ctx.session)
        row = await handler.load_for_update(ctx, op.entity_id)
    if row is None:
        raise Rejected(f"no {op.entity} {op.entity_id} in your organisation")
    scope = await ctx.session.run_sync(lambda s: handler.scope(s, row))
    branches = ctx.principal.branch_ids
    if scope and branches is not None and not branches.intersection(scope):
        raise Rejected(f"forbidden: this {op.entity} belongs to a branch you do not work at")
    return row


def _error_kind(error: BaseException) -> str:
    """The error's type (and SQLSTATE for a database error), without its message."""
    original = getattr(error, "orig", None)
    if original is not None:
        return (
            f"{type(error).__name__}({type(original).__name__} {getattr(original, 'sqlstate', '')})"
        )
    return type(error).__name__


#: SQLSTATEs that refuse the data itself; a retry of the same op fails the same way. Unique
#: and foreign-key violations are not among them: those can be races, and a retry may pass.
_PERMANENT = {"23502": "a required value is missing", "23514": "a value is not allowed"}


def _permanent_refusal(error: BaseException) -> str | None:
    """The reason to refuse an op the database will never accept (None: not such an error).
    Never the database's message: it quotes the values."""
    state = getattr(getattr(error, "orig", None), "sqlstate", None) or ""
    if state.startswith("22"):  # data exception: too long, out of range, bad format
        return f"the server cannot store a value of this change (too long or out of range; {state})"
    if state in _PERMANENT:
        return f"the server cannot store this change: {_PERMANENT[state]} ({state})"
    return None


def _is_contention(error: BaseException) -> bool:
    """A deadlock or serialization failure: nothing is wrong with the op, only its timing."""
    original = getattr(error, "orig", None)
    return getattr(original, "sqlstate", None) in {"40P01", "40001", "55P03"}


@dataclass
class _Batch:
    """What one push has answered so far; written once at the end, with the effects."""

    last_seq: int
    applied: list[dict[str, Any]] = field(default_factory=list)


class _Fallback(Exception):
    """The run cannot be applied in one go: apply its ops one by one."""


def _run_of_single_ops(groups: list[list[Op]], start: int, limit: int = PUSH_LIMIT) -> list[Op]:
    """Consecutive ops from ``groups[start]`` that belong to no transaction group."""
    run: list[Op] = []
    for group in groups[start:]:
        if len(group) != 1 or group[0].tx_group is not None or len(run) >= limit:
            break
        run.append(group[0])
    return run


_RECORD_PUSH = """
WITH applied AS (
  INSERT INTO sync_applied_ops (client_id, op_id, organisation_id, client_seq, entity,
                                entity_id, status, reason, conflict_id)
  SELECT r.client_id, r.op_id, r.organisation_id, r.client_seq, r.entity, r.entity_id,
         r.status, r.reason, r.conflict_id
  FROM jsonb_to_recordset(CAST(:applied AS jsonb)) AS r(
    client_id uuid, op_id uuid, organisation_id uuid, client_seq bigint, entity text,
    entity_id uuid, status text, reason text, conflict_id uuid)
)
UPDATE sync_clients SET {assignments} WHERE id = :client_id
"""


async def _record_push(
    session: AsyncSession, client: SyncClient, applied: list[dict[str, Any]]
) -> None:
    """The ops' terminal results and the device's new position (and whatever else of the
    device row changed) in one statement, instead of an INSERT and the ORM's UPDATE."""
    if not applied:
        return  # the ORM's flush writes the device row
    state = inspect(client)
    changed = {
        attr.key: getattr(client, attr.key)
        for attr in state.mapper.column_attrs
        if state.attrs[attr.key].history.has_changes()
    }
    # Written here, not by the ORM: the statement's autoflush must not write the row first.
    for name, value in changed.items():
        set_committed_value(client, name, value)
    assignments = ", ".join(f"{name} = :set_{name}" for name in changed)
    rows = [{k: str(v) if isinstance(v, uuid.UUID) else v for k, v in r.items()} for r in applied]
    await session.execute(
        text(_RECORD_PUSH.format(assignments=assignments)),
        {
            "applied": json.dumps(rows),
            "client_id": client.id,
            **{f"set_{name}": value for name, value in changed.items()},
        },
    )


def _applied_row(client: SyncClient, op: Op, result: OpResult) -> dict[str, Any]:
    return {
        "client_id": client.id,
        "op_id": op.op_id,
        "organisation_id": client.organisation_id,
        "client_seq": op.client_seq,
        "entity": op.entity[:32],
        "entity_id": op.entity_id,
        "status": result.status.value,
        "reason": result.reason,
        "conflict_id": result.conflict_id,
    }


class _Transient(Exception):
    """An unexpected failure: stop the batch; the client retries the rest later."""


def check_versions(protocol_version: int, schema_version: int) -> bool:
    """True when the client must upgrade before anything is applied."""
    return protocol_version != PROTOCOL_VERSION or not SCHEMA_MIN <= schema_version <= SCHEMA_MAX


sync_service = SyncService()
