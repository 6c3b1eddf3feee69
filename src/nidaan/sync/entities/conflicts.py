"""Conflicts are synced too: every eligible device sees one record, and its resolution."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from nidaan.sync.entities.common import iso
from nidaan.sync.models import SyncConflict
from nidaan.sync.registry import EntityHandler, register


def conflict_view(row: SyncConflict) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "entity": row.entity,
        "entity_id": str(row.entity_id),
        "field": row.field,
        "kind": row.kind,
        "status": row.status,
        "base_version": row.base_version,
        "server_version": row.server_version,
        "server_value": row.server_value,
        "server_changed_by": row.server_changed_by,
        "server_changed_at": iso(row.server_changed_at),
        "client_value": row.client_value,
        "current_value": row.current_value,
        "client_changed_by": row.client_changed_by,
        "client_changed_at": iso(row.client_changed_at),
        "client_id": str(row.client_id) if row.client_id else None,
        "op_id": str(row.op_id) if row.op_id else None,
        "resolution": row.resolution,
        "resolution_value": row.resolution_value,
        "resolution_reason": row.resolution_reason,
        "resolved_by_id": str(row.resolved_by_id) if row.resolved_by_id else None,
        "resolved_at": iso(row.resolved_at),
        "created_at": iso(row.created_at),
        "version": row.version,
    }


class ConflictHandler(EntityHandler):
    name = "conflict"
    model = SyncConflict

    def scope(self, session: Session, row: Any) -> list[uuid.UUID]:
        return list(row.scope_keys or [])

    async def serialize_many(self, session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
        return [conflict_view(row) for row in rows]


handler = register(ConflictHandler())
