"""``SyncClient``: local writes into the outbox, and push/pull rounds against the server.

One ``sync()`` call loops ``syncPendingOperations`` round trips until the outbox is empty (or
blocked) and the pull has no more pages. Every step that changes the local file is one SQLite
transaction, so a crash between two steps leaves a state the next ``sync()`` continues from:
unacknowledged ops are simply sent again and the server answers them from its idempotency
table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nidaan.kit.ids import new_id
from nidaan.sync.client.batching import MAX_BATCH_BYTES, MAX_BATCH_OPS, next_batch
from nidaan.sync.client.errors import ServerError, UpgradeRequired
from nidaan.sync.client.model import (
    ConflictRecord,
    FailedOp,
    JSONDict,
    LocalOp,
    Operation,
    OpResult,
    OpStatus,
    OutboxOp,
    Row,
)
from nidaan.sync.client.protocol import PROTOCOL_VERSION, SCHEMA_VERSION, SyncResponse
from nidaan.sync.client.store import LocalStore
from nidaan.sync.client.transport import Transport
from nidaan.sync.hlc import HLC, Clock, now_ms

MAX_GAP_ROUNDS = 3
MAX_ROUNDS = 10_000  # a guard against a server that always says hasMore


@dataclass
class SyncReport:
    """What one ``sync()`` did, for progress lines and tests."""

    rounds: int = 0
    pushed: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    gaps: int = 0
    pulled: int = 0
    resets: int = 0
    cursor: str | None = None
    duration_s: float = 0.0
    results: list[OpResult] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"pushed {self.pushed} (applied {self.applied}, duplicate {self.duplicates}, "
            f"rejected {self.rejected}, conflict {self.conflicts}), pulled {self.pulled} rows "
            f"in {self.rounds} round(s), {self.duration_s:.2f}s"
            + (f", reset x{self.resets}" if self.resets else "")
        )


class SyncClient:
    """One device: its local store, its clock and its connection to the server."""

    def __init__(
        self,
        store: LocalStore,
        transport: Transport,
        *,
        branch_id: str | None = None,
        protocol_version: int = PROTOCOL_VERSION,
        schema_version: int = SCHEMA_VERSION,
        pull_limit: int = 500,
        max_batch_ops: int = MAX_BATCH_OPS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        physical: Callable[[], int] = now_ms,
        correct_clock: bool = True,
    ) -> None:
        self.store = store
        self.transport = transport
        self.protocol_version = protocol_version
        # Stamped on each op when it is queued; a client upgraded mid-life keeps old ops' value.
        self.schema_version = schema_version
        self.pull_limit = pull_limit
        self.max_batch_ops = max_batch_ops
        self.max_batch_bytes = max_batch_bytes
        self.correct_clock = correct_clock
        self._physical = physical
        if branch_id is not None:
            store.set_meta("branch_id", branch_id)
        if transport.server_url:
            store.set_meta("server_url", transport.server_url)
        last = store.get_meta("last_hlc")
        self.clock = Clock(
            store.client_id, last=HLC.parse(last) if last else None, physical=physical
        )
        self.clock.offset_ms = int(store.get_meta("clock_offset_ms") or 0)
        self._lock = asyncio.Lock()
        self._write_listeners: list[Callable[[], None]] = []

    @property
    def client_id(self) -> str:
        return self.store.client_id

    @property
    def branch_id(self) -> str | None:
        return self.store.get_meta("branch_id")

    @property
    def cursor(self) -> str | None:
        return self.store.get_meta("cursor")

    @property
    def syncing(self) -> bool:
        return self._lock.locked()

    def on_local_write(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each local write is committed (the scheduler's debounce)."""
        self._write_listeners.append(listener)

    # -- local writes ------------------------------------------------------------------------

    def write(self, ops: Sequence[LocalOp]) -> list[OutboxOp]:
        """Queue ``ops`` in one local transaction; several ops form one tx group (all or none)."""
        if not ops:
            return []
        tx_group = str(new_id()) if len(ops) > 1 else None
        with self.store.transaction():
            hlcs = [str(self.clock.tick()) for _ in ops]
            queued = self.store.queue(
                ops, hlcs=hlcs, schema_version=self.schema_version, tx_group=tx_group
            )
            self.store.set_meta("last_hlc", str(self.clock.last))
        for listener in self._write_listeners:
            listener()
        return queued

    def create(self, entity: str, data: JSONDict, *, entity_id: str | None = None) -> str:
        """Queue a create; returns the new row's id (a UUIDv7 made here unless given)."""
        row_id = entity_id or str(new_id())
        self.write([LocalOp(entity, Operation.CREATE, row_id, data)])
        return row_id

    def append(self, entity: str, data: JSONDict, *, entity_id: str | None = None) -> str:
        """Queue an insert-only row (payment, result); returns its id."""
        row_id = entity_id or str(new_id())
        self.write([LocalOp(entity, Operation.APPEND, row_id, data)])
        return row_id

    def update(
        self,
        entity: str,
        entity_id: str,
        changes: JSONDict,
        *,
        base_version: int | None = None,
    ) -> OutboxOp:
        """Queue changed fields only; ``base_version`` defaults to the synced row's version."""
        return self.write([LocalOp(entity, Operation.UPDATE, entity_id, changes, base_version)])[0]

    def delete(self, entity: str, entity_id: str, *, base_version: int | None = None) -> OutboxOp:
        return self.write([LocalOp(entity, Operation.DELETE, entity_id, {}, base_version)])[0]

    def transition(
        self,
        entity: str,
        entity_id: str,
        to: str,
        *,
        base_version: int | None = None,
        **data: Any,
    ) -> OutboxOp:
        """Queue a workflow step, e.g. ``transition("sample", id, "collected")``."""
        op = LocalOp(entity, Operation.TRANSITION, entity_id, {"to": to, **data}, base_version)
        return self.write([op])[0]

    # -- reads -------------------------------------------------------------------------------

    def get(self, entity: str, entity_id: str) -> Row | None:
        return self.store.get(entity, entity_id)

    def rows(self, entity: str, *, include_deleted: bool = False) -> list[Row]:
        return self.store.rows(entity, include_deleted=include_deleted)

    def pending(self) -> list[OutboxOp]:
        return self.store.pending()

    def failed(self) -> list[FailedOp]:
        return self.store.failed()

    def conflicts(self, status: str | None = "OPEN") -> list[ConflictRecord]:
        return self.store.conflicts(status)

    @property
    def upgrade_required(self) -> bool:
        return self.store.get_meta("upgrade_required") is not None

    @property
    def last_sync_at(self) -> str | None:
        return self.store.get_meta("last_sync_at")

    # -- sync --------------------------------------------------------------------------------

    async def sync(self) -> SyncReport:
        """Push every pending op and pull until up to date. Raises a ``SyncError`` subclass."""
        async with self._lock:
            started = time.monotonic()
            report = SyncReport()
            gap_rounds = 0
            while report.rounds < MAX_ROUNDS:
                batch = next_batch(
                    self.store.pending(),
                    max_ops=self.max_batch_ops,
                    max_bytes=self.max_batch_bytes,
                )
                self.store.mark_attempt(op.op_id for op in batch)
                await self.transport.ensure_token()
                sent_at = self._physical()
                response = await self.transport.sync(self._variables(batch))
                received_at = self._physical()
                report.rounds += 1
                report.pushed += len(batch)
                if response.upgrade_required:
                    self.store.set_meta(
                        "upgrade_required", f"{self.protocol_version}/{self.schema_version}"
                    )
                    raise UpgradeRequired(
                        f"the server does not accept protocol {self.protocol_version} / "
                        f"schema {self.schema_version}; upgrade this client"
                    )
                gap = self._absorb(batch, response, report, sent_at, received_at)
                unanswered = len(batch) - len({r.op_id for r in response.results})
                if unanswered > 0 and gap is None:
                    # The server stopped mid-batch (docs/sync.md): retry the rest with backoff.
                    raise ServerError(
                        f"the server answered {len(batch) - unanswered} of "
                        f"{len(batch)} ops; the rest will be retried"
                    )
                if gap is not None:
                    gap_rounds += 1
                    if gap_rounds > MAX_GAP_ROUNDS:
                        raise ServerError(f"the server keeps expecting client seq {gap}")
                if response.reset:
                    continue
                if not response.has_more and not (batch and self.store.pending_count()):
                    break
            report.cursor = self.cursor
            report.duration_s = time.monotonic() - started
            self.store.set_meta("last_sync_at", datetime.now(UTC).isoformat(timespec="seconds"))
            return report

    def _variables(self, batch: list[OutboxOp]) -> dict[str, Any]:
        return {
            "clientId": self.client_id,
            "protocolVersion": self.protocol_version,
            "schemaVersion": self.schema_version,
            "cursor": self.cursor,
            "ops": [op.to_input() for op in batch],
            "pullLimit": self.pull_limit,
            "branchId": self.branch_id,
        }

    def _absorb(
        self,
        batch: list[OutboxOp],
        response: SyncResponse,
        report: SyncReport,
        sent_at: int,
        received_at: int,
    ) -> int | None:
        """Apply one answer locally in one transaction; returns the expected seq of a GAP."""
        self.store.set_meta("upgrade_required", None)
        self._observe_clock(response, sent_at, received_at)
        gap: int | None = None
        with self.store.transaction():
            for result in response.results:
                report.results.append(result)
                expected = self._apply_result(result, report)
                if expected is not None and gap is None:
                    gap = expected
            if gap is not None and batch and gap < batch[0].client_seq:
                # The server lost ops we had handed over (a restore): number ours from its point.
                self.store.renumber(gap)
            for conflict in response.conflicts:
                if conflict.get("id") is not None:
                    self.store.record_conflict(str(conflict["id"]), data=conflict)
            if response.reset:
                report.resets += 1
                self.store.reset_synced()
            else:
                self.store.apply_changes(response.changes, response.cursor)
                report.pulled += len(response.changes)
            self.store.set_meta("last_hlc", str(self.clock.last))
            self.store.set_meta("clock_offset_ms", str(self.clock.offset_ms))
            self.store.set_meta("clock_suspect", "1" if response.clock_suspect else None)
        return gap

    def _apply_result(self, result: OpResult, report: SyncReport) -> int | None:
        status = result.status
        op = self.store.get_op(result.op_id)
        if status == OpStatus.APPLIED:
            report.applied += 1
        elif status == OpStatus.DUPLICATE:
            report.duplicates += 1
        elif status == OpStatus.REJECTED:
            report.rejected += 1
            self.store.fail(result.op_id, result.reason or "rejected by the server")
        elif status == OpStatus.CONFLICT:
            report.conflicts += 1
        elif status == OpStatus.GAP:
            report.gaps += 1
            return result.expected_seq
        # An applied identity edit can open a review too (LWW_REVIEW), not only CONFLICT.
        for conflict_id in dict.fromkeys(
            [*([result.conflict_id] if result.conflict_id else []), *result.conflict_ids]
        ):
            data = {"entity": op.entity, "entityId": op.entity_id} if op else {}
            self.store.record_conflict(conflict_id, op_id=result.op_id, data=data)
        if status in (OpStatus.APPLIED, OpStatus.DUPLICATE, OpStatus.CONFLICT):
            self.store.acknowledge(result.op_id)
        return None

    def _observe_clock(self, response: SyncResponse, sent_at: int, received_at: int) -> None:
        """Correct the device clock by the server's (NTP-style, midpoint of the round trip)."""
        if response.server_time_ms is not None and self.correct_clock:
            self.clock.offset_ms = response.server_time_ms - (sent_at + received_at) // 2
        if response.server_hlc:
            self.clock.receive(HLC.parse(response.server_hlc))

    # -- pass-throughs for UIs and the agent --------------------------------------------------

    async def server_status(self) -> dict[str, Any]:
        """``getSyncStatus`` for this client (head seq, lag, clock suspect, ...)."""
        return await self.transport.sync_status(self.client_id)

    async def resolve_conflict(
        self,
        conflict_id: str,
        resolution: str,
        reason: str,
        *,
        value: Any = None,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        conflict = await self.transport.resolve_conflict(
            conflict_id, resolution, reason, value=value, expected_version=expected_version
        )
        self.store.record_conflict(conflict_id, data=conflict)
        return conflict
