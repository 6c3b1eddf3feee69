"""Plain records the local store hands out (no behaviour, no I/O)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

JSONDict = dict[str, Any]


class Operation(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    TRANSITION = "transition"
    APPEND = "append"


class OpStatus(enum.StrEnum):
    APPLIED = "APPLIED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"
    CONFLICT = "CONFLICT"
    GAP = "GAP"


@dataclass(frozen=True)
class LocalOp:
    """A change a user made, before it has a place in the outbox."""

    entity: str
    operation: Operation | str
    entity_id: str
    data: JSONDict = field(default_factory=dict)
    # None means "the version of the synced row, if there is one".
    base_version: int | None = None


@dataclass(frozen=True)
class OutboxOp:
    op_id: str
    client_seq: int
    entity: str
    entity_id: str
    operation: str
    data: JSONDict
    base_version: int | None
    hlc: str
    schema_version: int
    tx_group: str | None
    attempts: int
    created_at: str

    def to_input(self) -> JSONDict:
        """The op as a GraphQL ``SyncOpInput``."""
        return {
            "opId": self.op_id,
            "clientSeq": self.client_seq,
            "entity": self.entity,
            "entityId": self.entity_id,
            "operation": self.operation,
            "data": self.data,
            "baseVersion": self.base_version,
            "hlc": self.hlc,
            "schemaVersion": self.schema_version,
            "txGroup": self.tx_group,
        }


@dataclass(frozen=True)
class Row:
    """An entity row as the user sees it: the synced row with pending local ops applied."""

    entity: str
    id: str
    version: int | None
    deleted: bool
    data: JSONDict
    pending: int = 0


@dataclass(frozen=True)
class FailedOp:
    op: OutboxOp
    reason: str
    failed_at: str


@dataclass(frozen=True)
class ConflictRecord:
    id: str
    entity: str | None
    entity_id: str | None
    field: str | None
    kind: str | None
    status: str
    op_id: str | None
    data: JSONDict
    seen_at: str


@dataclass(frozen=True)
class OpResult:
    op_id: str
    status: OpStatus
    seq: int | None = None
    reason: str | None = None
    conflict_id: str | None = None
    expected_seq: int | None = None
    conflict_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    seq: int
    entity: str
    entity_id: str
    deleted: bool
    version: int | None
    data: JSONDict
