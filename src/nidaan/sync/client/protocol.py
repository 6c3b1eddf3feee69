"""The GraphQL documents the client sends and the parsing of their answers (docs/sync.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nidaan.sync.client.model import Change, OpResult, OpStatus

PROTOCOL_VERSION = 1
SCHEMA_VERSION = 2

CONFLICT_FIELDS = """
    id entity entityId field kind status baseVersion serverVersion serverValue serverChangedBy
    serverChangedAt clientValue clientChangedBy clientChangedAt clientId currentValue resolution
    resolutionValue resolutionReason resolvedById resolvedAt version
"""

SYNC_MUTATION = f"""
mutation Sync($clientId: ID!, $protocolVersion: Int!, $schemaVersion: Int!, $cursor: String,
              $ops: [SyncOpInput!]!, $pullLimit: Int, $branchId: ID) {{
  syncPendingOperations(clientId: $clientId, protocolVersion: $protocolVersion,
                        schemaVersion: $schemaVersion, cursor: $cursor, ops: $ops,
                        pullLimit: $pullLimit, branchId: $branchId) {{
    results {{ opId status entity entityId reason conflictId conflictIds expectedSeq }}
    changes {{ seq entity entityId deleted data }}
    cursor hasMore serverTime serverHlc reset upgradeRequired clockSuspect
    conflicts {{ {CONFLICT_FIELDS} }}
  }}
}}
"""

STATUS_QUERY = """
query Status($clientId: ID) {
  getSyncStatus(clientId: $clientId) {
    headSeq pulledSeq lag acknowledgedOps lastClientSeq openConflicts lastSyncAt
    tombstoneHorizonSeq tombstoneHorizonDays epoch schemaVersions { min max } clockSuspect
  }
}
"""

RESOLVE_MUTATION = f"""
mutation Resolve($conflictId: ID!, $resolution: Resolution!, $value: JSON, $reason: String!,
                 $expectedVersion: Int) {{
  resolveConflict(conflictId: $conflictId, resolution: $resolution, value: $value,
                  reason: $reason, expectedVersion: $expectedVersion) {{ {CONFLICT_FIELDS} }}
}}
"""


@dataclass(frozen=True)
class SyncResponse:
    results: list[OpResult]
    changes: list[Change]
    cursor: str | None
    has_more: bool
    server_time_ms: int | None
    server_hlc: str | None
    reset: bool
    upgrade_required: bool
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    clock_suspect: bool = False


def parse_time_ms(value: Any) -> int | None:
    """``serverTime`` as ms since the epoch, whether sent as a number or an ISO string."""
    if value is None:
        return None
    if isinstance(value, int | float):
        # Seconds and milliseconds are told apart by size (ms passed 1e11 in 1973).
        return int(value if value > 1e11 else value * 1000)
    text = str(value)
    if text.lstrip("-").isdigit():
        return parse_time_ms(int(text))
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_sync(payload: dict[str, Any]) -> SyncResponse:
    results = [
        OpResult(
            op_id=str(r["opId"]),
            status=OpStatus(str(r["status"]).upper()),
            seq=_int(r.get("seq")),
            reason=r.get("reason"),
            conflict_id=None if r.get("conflictId") is None else str(r["conflictId"]),
            expected_seq=_int(r.get("expectedSeq")),
            conflict_ids=tuple(str(c) for c in r.get("conflictIds") or ()),
        )
        for r in payload.get("results") or []
    ]
    changes = [
        Change(
            seq=int(c["seq"]),
            entity=str(c["entity"]),
            entity_id=str(c["entityId"]),
            deleted=bool(c.get("deleted")),
            # The change's seq is the row version the server compares baseVersion with.
            version=_int(c.get("version", c["seq"])),
            data=dict(c.get("data") or {}),
        )
        for c in payload.get("changes") or []
    ]
    return SyncResponse(
        results=results,
        changes=changes,
        cursor=payload.get("cursor"),
        has_more=bool(payload.get("hasMore")),
        server_time_ms=parse_time_ms(payload.get("serverTime")),
        server_hlc=payload.get("serverHlc"),
        reset=bool(payload.get("reset")),
        upgrade_required=bool(payload.get("upgradeRequired")),
        conflicts=list(payload.get("conflicts") or []),
        clock_suspect=bool(payload.get("clockSuspect")),
    )
