"""The sync protocol over GraphQL (Strawberry): the four operations of docs/sync.md.

Bearer-token auth is the REST API's. A failed operation rolls its transaction back and comes
back as a GraphQL error whose ``extensions.code`` is the same stable code REST uses.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from fastapi import Depends, Request
from graphql import GraphQLError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import ValidationCache
from strawberry.fastapi import GraphQLRouter
from strawberry.scalars import JSON
from strawberry.types import Info

from nidaan.auth.dependencies import current_principal
from nidaan.auth.principal import Principal
from nidaan.config import Settings, get_settings
from nidaan.deps import get_session
from nidaan.kit.db import commit
from nidaan.kit.errors import InvalidInput, NidaanError
from nidaan.kit.graphql_limits import limit_extensions
from nidaan.kit.time import utcnow
from nidaan.sync import conflicts as conflict_service
from nidaan.sync.context import Op
from nidaan.sync.entities.conflicts import conflict_view
from nidaan.sync.models import SyncConflict
from nidaan.sync.protocol import Cursor
from nidaan.sync.registry import OpStatus as OpStatusValue
from nidaan.sync.server_clock import server_clock
from nidaan.sync.service import OpResult, bind_client, check_versions, sync_service

T = TypeVar("T")

OpStatus = strawberry.enum(OpStatusValue, name="OpStatus")


@strawberry.enum
class Resolution(enum.Enum):
    KEEP_SERVER = "KEEP_SERVER"
    TAKE_CLIENT = "TAKE_CLIENT"
    MERGED = "MERGED"


@strawberry.input(description="One queued change; see docs/sync.md 'An op'.")
class SyncOpInput:
    op_id: strawberry.ID
    client_seq: int
    entity: str
    entity_id: strawberry.ID
    operation: str
    data: JSON
    hlc: str
    base_version: int | None = None
    schema_version: int | None = None
    tx_group: str | None = None


@strawberry.type(name="OpResult")
class OpResultType:
    op_id: strawberry.ID
    status: OpStatus  # type: ignore[valid-type]
    entity: str | None
    entity_id: strawberry.ID | None
    reason: str | None
    conflict_id: strawberry.ID | None
    conflict_ids: list[strawberry.ID]
    expected_seq: int | None


@strawberry.type(name="Change")
class ChangeType:
    seq: int = strawberry.field(description="Row version: send it as baseVersion when editing")
    entity: str
    entity_id: strawberry.ID
    deleted: bool
    data: JSON | None


@strawberry.type(name="Conflict")
class ConflictType:
    id: strawberry.ID
    entity: str
    entity_id: strawberry.ID
    field: str
    kind: str
    status: str
    base_version: int | None
    server_version: int | None
    server_value: JSON | None
    server_changed_by: str | None
    server_changed_at: datetime | None
    client_value: JSON | None
    client_changed_by: str | None
    client_changed_at: datetime | None
    client_id: strawberry.ID | None
    current_value: JSON | None = strawberry.field(
        description="The field's value now while OPEN; then the value that superseded or "
        "resolved it. Sensitive fields (a mobile number) are masked."
    )
    can_resolve: bool = strawberry.field(description="Whether the caller's roles may decide it")
    resolution: str | None
    resolution_value: JSON | None
    resolution_reason: str | None
    resolved_by_id: strawberry.ID | None
    resolved_at: datetime | None
    version: int


@strawberry.type
class SyncResult:
    results: list[OpResultType]
    changes: list[ChangeType]
    cursor: str | None
    has_more: bool
    server_time: datetime
    server_hlc: str
    conflicts: list[ConflictType]
    reset: bool
    upgrade_required: bool
    clock_suspect: bool


@strawberry.type
class SchemaWindow:
    min: int
    max: int


@strawberry.type(name="SyncStatus")
class SyncStatusType:
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
    schema_versions: SchemaWindow
    clock_suspect: bool


# ---- context and errors ----------------------------------------------------------------


async def get_context(
    request: Request,
    session: AsyncSession = Depends(get_session, scope="function"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    return {"request": request, "session": session, "principal": principal}


def _ctx(info: Info) -> tuple[AsyncSession, Principal, Settings]:
    context = info.context
    return context["session"], context["principal"], get_settings()


async def _guarded(session: AsyncSession, work: Callable[[], Awaitable[T]]) -> T:
    """Run a resolver; on an expected error roll back and answer with its stable code."""
    try:
        return await work()
    except NidaanError as error:
        await session.rollback()
        raise GraphQLError(
            error.detail,
            extensions={"code": error.code, "status": error.status_code, **error.data},
        ) from None
    except Exception:
        # Nothing half-done may be committed by the request's session teardown.
        await session.rollback()
        raise


def _uuid(value: Any, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{name} is not a UUID.", field=name) from None


def _result(result: OpResult) -> OpResultType:
    return OpResultType(
        op_id=strawberry.ID(str(result.op_id)),
        status=result.status,
        entity=result.entity,
        entity_id=strawberry.ID(str(result.entity_id)) if result.entity_id else None,
        reason=result.reason,
        conflict_id=strawberry.ID(str(result.conflict_id)) if result.conflict_id else None,
        conflict_ids=[strawberry.ID(str(c)) for c in result.conflict_ids],
        expected_seq=result.expected_seq,
    )


def conflict_type(row: SyncConflict, principal: Principal) -> ConflictType:
    view = conflict_view(row)
    return ConflictType(
        **{
            **{k: view[k] for k in ConflictType.__annotations__ if k in view},
            "server_changed_at": row.server_changed_at,
            "client_changed_at": row.client_changed_at,
            "resolved_at": row.resolved_at,
            "can_resolve": conflict_service.may_resolve(principal, row.kind),
        }
    )


def _op(raw: SyncOpInput) -> Op:
    if not isinstance(raw.data, dict):
        raise InvalidInput("op data must be a JSON object.", field="ops.data")
    return Op(
        op_id=_uuid(raw.op_id, "opId"),
        client_seq=raw.client_seq,
        entity=raw.entity,
        entity_id=_uuid(raw.entity_id, "entityId"),
        operation=raw.operation,
        data=raw.data,
        hlc=raw.hlc,
        base_version=raw.base_version,
        schema_version=raw.schema_version,
        tx_group=raw.tx_group,
    )


# ---- schema ------------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field(description="Where the caller's device stands; docs/sync.md 'Status'.")
    async def get_sync_status(
        self, info: Info, client_id: strawberry.ID | None = None, entity_type: str | None = None
    ) -> SyncStatusType:
        session, principal, settings = _ctx(info)

        async def work() -> SyncStatusType:
            client = await sync_service.get_client(
                session, principal, _uuid(client_id, "clientId") if client_id else None
            )
            status = await sync_service.status(session, settings, principal, client, entity_type)
            return SyncStatusType(
                head_seq=status.head_seq,
                pulled_seq=status.pulled_seq,
                lag=status.lag,
                acknowledged_ops=status.acknowledged_ops,
                last_client_seq=status.last_client_seq,
                open_conflicts=status.open_conflicts,
                last_sync_at=status.last_sync_at,
                tombstone_horizon_seq=status.tombstone_horizon_seq,
                tombstone_horizon_days=status.tombstone_horizon_days,
                epoch=status.epoch,
                schema_versions=SchemaWindow(min=status.schema_min, max=status.schema_max),
                clock_suspect=status.clock_suspect,
            )

        return await _guarded(session, work)

    @strawberry.field(description="Conflicts the caller may review (default: open ones).")
    async def conflicts(
        self,
        info: Info,
        status: str | None = "OPEN",
        entity: str | None = None,
        limit: int = 100,
    ) -> list[ConflictType]:
        session, principal, _ = _ctx(info)

        async def work() -> list[ConflictType]:
            rows, _ = await conflict_service.list_conflicts(
                session, principal, status=status, entity=entity, limit=min(max(limit, 1), 500)
            )
            return [conflict_type(row, principal) for row in rows]

        return await _guarded(session, work)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Push queued ops, then pull changes, in one round trip.")
    async def sync_pending_operations(
        self,
        info: Info,
        client_id: strawberry.ID,
        protocol_version: int,
        schema_version: int,
        cursor: str | None = None,
        ops: list[SyncOpInput] | None = None,
        pull_limit: int | None = None,
        branch_id: strawberry.ID | None = None,
    ) -> SyncResult:
        session, principal, settings = _ctx(info)

        async def work() -> SyncResult:
            device = _uuid(client_id, "clientId")
            branch = _uuid(branch_id, "branchId") if branch_id else None
            try:
                position = Cursor.decode(cursor)
            except ValueError as error:
                raise InvalidInput(str(error), field="cursor") from None
            parsed = [_op(raw) for raw in ops or []]
            if check_versions(protocol_version, schema_version):
                return _empty(cursor, upgrade_required=True)
            client = await bind_client(session, principal, device, branch, schema_version)
            results = await sync_service.push(
                session, settings, principal, client, parsed, schema_version
            )
            # Commit the push first: its changes get their sequence numbers at commit, and
            # the pull below must carry them (a client reads its own writes).
            await commit(session)
            page = await sync_service.pull(session, principal, client, position, pull_limit)
            touched = {c for r in results for c in r.conflict_ids}
            conflict_rows = (
                list(
                    await session.scalars(select(SyncConflict).where(SyncConflict.id.in_(touched)))
                )
                if touched
                else []
            )
            return SyncResult(
                results=[_result(r) for r in results],
                changes=[
                    ChangeType(
                        seq=c.seq,
                        entity=c.entity,
                        entity_id=strawberry.ID(str(c.entity_id)),
                        deleted=c.deleted,
                        data=c.data,
                    )
                    for c in page.changes
                ],
                cursor=None if page.reset else page.cursor.encode(),
                has_more=page.has_more,
                server_time=utcnow(),
                server_hlc=str(server_clock.tick()),
                conflicts=[conflict_type(row, principal) for row in conflict_rows],
                reset=page.reset,
                upgrade_required=False,
                clock_suspect=client.clock_suspect,
            )

        return await _guarded(session, work)

    @strawberry.mutation(description="Apply one op now (always-online callers).")
    async def queue_operation(
        self,
        info: Info,
        entity: str,
        operation: str,
        data: JSON,
        entity_id: strawberry.ID | None = None,
        base_version: int | None = None,
    ) -> OpResultType:
        session, principal, settings = _ctx(info)

        async def work() -> OpResultType:
            if not isinstance(data, dict):
                raise InvalidInput("data must be a JSON object.", field="data")
            result = await sync_service.queue_operation(
                session,
                settings,
                principal,
                entity,
                operation,
                data,
                _uuid(entity_id, "entityId") if entity_id else None,
                base_version,
            )
            return _result(result)

        return await _guarded(session, work)

    @strawberry.mutation(description="Decide a conflict; role-checked, idempotent, audited.")
    async def resolve_conflict(
        self,
        info: Info,
        conflict_id: strawberry.ID,
        resolution: Resolution,
        reason: str,
        value: JSON | None = None,
        expected_version: int | None = None,
    ) -> ConflictType:
        session, principal, _ = _ctx(info)

        async def work() -> ConflictType:
            row = await conflict_service.resolve(
                session,
                principal,
                _uuid(conflict_id, "conflictId"),
                conflict_service.Resolution(resolution.value),
                reason=reason,
                value=value,
                expected_version=expected_version,
            )
            return conflict_type(row, principal)

        return await _guarded(session, work)


def _empty(cursor: str | None, *, upgrade_required: bool) -> SyncResult:
    return SyncResult(
        results=[],
        changes=[],
        cursor=cursor,
        has_more=False,
        server_time=utcnow(),
        server_hlc=str(server_clock.tick()),
        conflicts=[],
        reset=False,
        upgrade_required=upgrade_required,
        clock_suspect=False,
    )


# Devices send the same few documents over and over: validating each once (the limits'
# rules included) took a sixth of a 100-op push's CPU.
schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    extensions=[*limit_extensions(), ValidationCache(maxsize=64)],
)


def sdl() -> str:
    return schema.as_str()


graphql_router: GraphQLRouter[Any, None] = GraphQLRouter(
    schema, context_getter=get_context, graphql_ide=None, allow_queries_via_get=False
)
