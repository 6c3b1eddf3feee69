"""What applying one op needs: the session, the caller, the device, the op and its clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.principal import Principal
from nidaan.sync.hlc import HLC


@dataclass(frozen=True)
class Op:
    op_id: uuid.UUID
    client_seq: int
    entity: str
    entity_id: uuid.UUID
    operation: str
    data: dict[str, Any]
    hlc: str
    base_version: int | None = None
    schema_version: int | None = None
    tx_group: str | None = None


@dataclass
class OpContext:
    session: AsyncSession
    principal: Principal
    op: Op
    # The op's clock after clamping; the device that sent it (None for queueOperation).
    hlc: HLC
    client_id: uuid.UUID | None
    received_at: datetime
    conflicts: list[uuid.UUID] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        return self.op.data
