"""REST shapes for conflict review (the sync protocol itself is GraphQL)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from nidaan.kit.schemas import Schema


class ConflictOut(Schema):
    id: uuid.UUID
    entity: str
    entity_id: uuid.UUID
    field: str
    kind: str
    status: str
    base_version: int | None
    server_version: int | None
    server_value: Any
    server_changed_by: str | None
    server_changed_at: datetime | None
    client_value: Any
    client_changed_by: str | None
    client_changed_at: datetime | None
    client_id: uuid.UUID | None
    current_value: Any = Field(
        description="The field's value now while OPEN; then the value that superseded or "
        "resolved it (sensitive fields masked)"
    )
    can_resolve: bool = Field(description="Whether your roles may decide this conflict")
    op_id: uuid.UUID | None
    resolution: str | None
    resolution_value: Any
    resolution_reason: str | None
    resolved_by_id: uuid.UUID | None
    resolved_at: datetime | None
    created_at: datetime | None
    version: int
