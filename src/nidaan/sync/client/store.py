"""The client's local SQLite file: synced rows, the local view, the outbox, failures, conflicts.

Two row tables: ``synced_rows`` is the server's truth as last pulled; ``rows`` is what the user
sees, the synced row with pending outbox ops re-applied (see ``rebase``). Keeping both lets an
op that the server rejected simply disappear from the view instead of lingering.

Every local write puts its view row and its outbox row in one transaction; the cursor is saved
in the same transaction as the pulled rows. WAL mode keeps readers (``status``) off the writer.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nidaan.kit.ids import new_id
from nidaan.sync.client.model import (
    Change,
    ConflictRecord,
    FailedOp,
    LocalOp,
    Operation,
    OutboxOp,
    Row,
)
from nidaan.sync.client.rebase import RowState, rebase

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS synced_rows (
    entity TEXT NOT NULL, id TEXT NOT NULL, version INTEGER, deleted INTEGER NOT NULL,
    data TEXT NOT NULL, seq INTEGER, PRIMARY KEY (entity, id));
CREATE TABLE IF NOT EXISTS rows (
    entity TEXT NOT NULL, id TEXT NOT NULL, version INTEGER, deleted INTEGER NOT NULL,
    data TEXT NOT NULL, pending INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (entity, id));
CREATE TABLE IF NOT EXISTS outbox (
    client_seq INTEGER PRIMARY KEY, op_id TEXT NOT NULL UNIQUE, entity TEXT NOT NULL,
    entity_id TEXT NOT NULL, operation TEXT NOT NULL, data TEXT NOT NULL, base_version INTEGER,
    hlc TEXT NOT NULL, schema_version INTEGER NOT NULL, tx_group TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_entity ON outbox (entity, entity_id);
CREATE TABLE IF NOT EXISTS failed_ops (
    op_id TEXT PRIMARY KEY, client_seq INTEGER NOT NULL, entity TEXT NOT NULL,
    entity_id TEXT NOT NULL, operation TEXT NOT NULL, data TEXT NOT NULL, base_version INTEGER,
    hlc TEXT NOT NULL, schema_version INTEGER NOT NULL, tx_group TEXT, attempts INTEGER NOT NULL,
    created_at TEXT NOT NULL, reason TEXT NOT NULL, failed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conflicts (
    id TEXT PRIMARY KEY, entity TEXT, entity_id TEXT, field TEXT, kind TEXT,
    status TEXT NOT NULL, op_id TEXT, data TEXT NOT NULL, seen_at TEXT NOT NULL);
"""

# A constant column list: the f-strings below interpolate no user input (hence the S608 noqa).
OUTBOX_COLUMNS = (
    "op_id, client_seq, entity, entity_id, operation, data, base_version, hlc, "
    "schema_version, tx_group, attempts, created_at"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _op(row: sqlite3.Row) -> OutboxOp:
    return OutboxOp(
        op_id=row["op_id"],
        client_seq=row["client_seq"],
        entity=row["entity"],
        entity_id=row["entity_id"],
        operation=row["operation"],
        data=json.loads(row["data"]),
        base_version=row["base_version"],
        hlc=row["hlc"],
        schema_version=row["schema_version"],
        tx_group=row["tx_group"],
        attempts=row["attempts"],
        created_at=row["created_at"],
    )


class LocalStore:
    """One device's SQLite file. Not thread-safe: one sync agent (or test client) owns it."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) so one write is one unit.
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # an acknowledged local write survives
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._depth = 0
        with self.transaction():
            for statement in filter(str.strip, SCHEMA.split(";")):
                self._conn.execute(statement)
            if self.get_meta("client_id") is None:
                # Made once: the server binds it to the first user and organisation that use it.
                self.set_meta("client_id", str(new_id()))
            if self.get_meta("next_client_seq") is None:
                self.set_meta("next_client_seq", "1")

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction; nested uses join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self._conn
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self._conn
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self._conn.execute("COMMIT")

    # -- meta -----------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        value = self.get_meta("client_id")
        assert value is not None
        return value

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def set_meta(self, key: str, value: str | None) -> None:
        with self.transaction() as conn:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self._conn.execute("SELECT key, value FROM meta")}

    # -- local writes ---------------------------------------------------------------------

    def queue(
        self,
        ops: Sequence[LocalOp],
        *,
        hlcs: Sequence[str],
        schema_version: int,
        tx_group: str | None = None,
    ) -> list[OutboxOp]:
        """Append ``ops`` to the outbox and update the local view, all in one transaction."""
        if len(hlcs) != len(ops):
            raise ValueError("one HLC per op")
        queued: list[OutboxOp] = []
        with self.transaction() as conn:
            seq = int(self.get_meta("next_client_seq") or "1")
            for local, hlc in zip(ops, hlcs, strict=True):
                base_version = local.base_version
                if base_version is None and local.operation != Operation.CREATE:
                    base_version = self.synced_version(local.entity, local.entity_id)
                op = OutboxOp(
                    op_id=str(new_id()),
                    client_seq=seq,
                    entity=local.entity,
                    entity_id=str(local.entity_id),
                    operation=str(local.operation),
                    data=dict(local.data),
                    base_version=base_version,
                    hlc=hlc,
                    schema_version=schema_version,
                    tx_group=tx_group,
                    attempts=0,
                    created_at=_now(),
                )
                conn.execute(
                    f"INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                    (
                        op.op_id,
                        op.client_seq,
                        op.entity,
                        op.entity_id,
                        op.operation,
                        _dumps(op.data),
                        op.base_version,
                        op.hlc,
                        op.schema_version,
                        op.tx_group,
                        op.attempts,
                        op.created_at,
                    ),
                )
                queued.append(op)
                seq += 1
            self.set_meta("next_client_seq", str(seq))
            for entity, entity_id in {(op.entity, op.entity_id) for op in queued}:
                self.rebuild(entity, entity_id)
        return queued

    # -- outbox ---------------------------------------------------------------------------

    def pending(self, *, from_seq: int | None = None, limit: int | None = None) -> list[OutboxOp]:
        """Outbox ops in client_seq order (the order the server must apply them)."""
        sql = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE client_seq >= ? ORDER BY client_seq"  # noqa: S608
        params: list[Any] = [from_seq or 0]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_op(r) for r in self._conn.execute(sql, params)]

    def pending_for(self, entity: str, entity_id: str) -> list[OutboxOp]:
        rows = self._conn.execute(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE entity = ? AND entity_id = ? "  # noqa: S608
            "ORDER BY client_seq",
            (entity, entity_id),
        )
        return [_op(r) for r in rows]

    def pending_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def get_op(self, op_id: str) -> OutboxOp | None:
        row = self._conn.execute(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE op_id = ?",  # noqa: S608
            (op_id,),
        ).fetchone()
        return None if row is None else _op(row)

    def mark_attempt(self, op_ids: Iterable[str]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1 WHERE op_id = ?",
                [(op_id,) for op_id in op_ids],
            )

    def acknowledge(self, op_id: str) -> OutboxOp | None:
        """Remove an op the server has answered for good; the view is rebuilt without it."""
        with self.transaction() as conn:
            op = self.get_op(op_id)
            if op is None:
                return None
            conn.execute("DELETE FROM outbox WHERE op_id = ?", (op_id,))
            self.rebuild(op.entity, op.entity_id)
            return op

    def fail(self, op_id: str, reason: str) -> OutboxOp | None:
        """Move a REJECTED op to the failed list (kept for the user, never retried)."""
        with self.transaction() as conn:
            op = self.acknowledge(op_id)
            if op is None:
                return None
            conn.execute(
                f"INSERT OR REPLACE INTO failed_ops ({OUTBOX_COLUMNS}, reason, failed_at) "  # noqa: S608
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    op.op_id,
                    op.client_seq,
                    op.entity,
                    op.entity_id,
                    op.operation,
                    _dumps(op.data),
                    op.base_version,
                    op.hlc,
                    op.schema_version,
                    op.tx_group,
                    op.attempts,
                    op.created_at,
                    reason,
                    _now(),
                ),
            )
            return op

    def renumber(self, first_seq: int) -> None:
        """Give the pending ops contiguous client_seqs from ``first_seq``, keeping their order.

        Used when the server expects a seq below our oldest pending op, which only happens
        after it was restored from a backup; the op ids (the idempotency keys) stay the same.
        """
        with self.transaction() as conn:
            ops = self.pending()
            # Two passes through negative numbers so the primary key never collides.
            for op in ops:
                conn.execute(
                    "UPDATE outbox SET client_seq = ? WHERE op_id = ?", (-op.client_seq, op.op_id)
                )
            for index, op in enumerate(ops):
                conn.execute(
                    "UPDATE outbox SET client_seq = ? WHERE op_id = ?",
                    (first_seq + index, op.op_id),
                )
            self.set_meta("next_client_seq", str(first_seq + len(ops)))

    def failed(self) -> list[FailedOp]:
        rows = self._conn.execute(
            f"SELECT {OUTBOX_COLUMNS}, reason, failed_at FROM failed_ops ORDER BY client_seq"  # noqa: S608
        )
        return [FailedOp(_op(r), r["reason"], r["failed_at"]) for r in rows]

    def failed_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM failed_ops").fetchone()[0])

    # -- conflicts ------------------------------------------------------------------------

    def record_conflict(
        self, conflict_id: str, *, op_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """Remember a conflict (from an op result, the touched list or a pulled row)."""
        # Op answers spell fields in camelCase (GraphQL), pulled rows in snake_case: keep one
        # spelling, so the latest value of a field (its status, current value) wins.
        data = {_snake(key): value for key, value in (data or {}).items()}
        with self.transaction() as conn:
            existing = conn.execute(
                "SELECT data, op_id, status FROM conflicts WHERE id = ?", (conflict_id,)
            ).fetchone()
            kept = json.loads(existing["data"]) if existing else {}
            merged = {**{_snake(k): v for k, v in kept.items()}, **data}
            status = str(
                merged.get("status") or (existing["status"] if existing else None) or "OPEN"
            ).upper()
            conn.execute(
                "INSERT OR REPLACE INTO conflicts "
                "(id, entity, entity_id, field, kind, status, op_id, data, seen_at) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    conflict_id,
                    merged.get("entity"),
                    merged.get("entity_id"),
                    merged.get("field"),
                    merged.get("kind"),
                    status,
                    op_id or (existing["op_id"] if existing else None),
                    _dumps(merged),
                    _now(),
                ),
            )

    def conflicts(self, status: str | None = None) -> list[ConflictRecord]:
        sql = "SELECT * FROM conflicts"
        params: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (status.upper(),)
        return [
            ConflictRecord(
                id=r["id"],
                entity=r["entity"],
                entity_id=r["entity_id"],
                field=r["field"],
                kind=r["kind"],
                status=r["status"],
                op_id=r["op_id"],
                data=json.loads(r["data"]),
                seen_at=r["seen_at"],
            )
            for r in self._conn.execute(sql + " ORDER BY seen_at, id", params)
        ]

    def open_conflict_count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM conflicts WHERE status = 'OPEN'").fetchone()
        return int(row[0])

    # -- pulls ----------------------------------------------------------------------------

    def apply_changes(self, changes: Sequence[Change], cursor: str | None) -> None:
        """Write pulled rows, rebase pending ops on them, then save the cursor: one transaction."""
        with self.transaction() as conn:
            for change in changes:
                data = change.data
                if change.deleted and not data:
                    # A tombstone may come without the row: keep what we knew, marked deleted.
                    known = self.synced(change.entity, change.entity_id)
                    data = known.data if known else {"id": change.entity_id}
                conn.execute(
                    "INSERT OR REPLACE INTO synced_rows (entity, id, version, deleted, data, seq) "
                    "VALUES (?,?,?,?,?,?)",
                    (
                        change.entity,
                        change.entity_id,
                        change.version,
                        int(change.deleted),
                        _dumps(data),
                        change.seq,
                    ),
                )
                if change.entity == "conflict":
                    self.record_conflict(change.entity_id, data=data)
                self.rebuild(change.entity, change.entity_id)
            self.set_meta("cursor", cursor)

    def reset_synced(self) -> None:
        """The server said ``reset``: forget synced rows and the cursor, keep the outbox."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM synced_rows")
            conn.execute("DELETE FROM rows")
            self.set_meta("cursor", None)
            # The view is now only local intent until the pull refills it.
            for entity, entity_id in {(op.entity, op.entity_id) for op in self.pending()}:
                self.rebuild(entity, entity_id)

    def rebuild(self, entity: str, entity_id: str) -> None:
        """Recompute one view row: the synced row with its pending ops re-applied."""
        with self.transaction() as conn:
            synced = self.synced(entity, entity_id)
            base = None if synced is None else RowState(synced.version, synced.deleted, synced.data)
            ops = self.pending_for(entity, entity_id)
            state = rebase(base, ops)
            if state is None:
                conn.execute("DELETE FROM rows WHERE entity = ? AND id = ?", (entity, entity_id))
                return
            conn.execute(
                "INSERT OR REPLACE INTO rows (entity, id, version, deleted, data, pending) "
                "VALUES (?,?,?,?,?,?)",
                (
                    entity,
                    entity_id,
                    state.version,
                    int(state.deleted),
                    _dumps(state.data),
                    len(ops),
                ),
            )

    # -- reads ----------------------------------------------------------------------------

    def synced(self, entity: str, entity_id: str) -> Row | None:
        row = self._conn.execute(
            "SELECT * FROM synced_rows WHERE entity = ? AND id = ?", (entity, entity_id)
        ).fetchone()
        if row is None:
            return None
        return Row(entity, entity_id, row["version"], bool(row["deleted"]), json.loads(row["data"]))

    def synced_version(self, entity: str, entity_id: str) -> int | None:
        row = self.synced(entity, entity_id)
        return None if row is None else row.version

    def get(self, entity: str, entity_id: str) -> Row | None:
        """The row as the user sees it (local intent included)."""
        row = self._conn.execute(
            "SELECT * FROM rows WHERE entity = ? AND id = ?", (entity, entity_id)
        ).fetchone()
        return None if row is None else self._row(row)

    def rows(self, entity: str, *, include_deleted: bool = False) -> list[Row]:
        sql = "SELECT * FROM rows WHERE entity = ?"
        if not include_deleted:
            sql += " AND deleted = 0"
        return [self._row(r) for r in self._conn.execute(sql + " ORDER BY id", (entity,))]

    def counts(self) -> dict[str, int]:
        """Synced rows per entity (for status lines)."""
        rows = self._conn.execute(
            "SELECT entity, count(*) AS n FROM synced_rows GROUP BY entity ORDER BY entity"
        )
        return {r["entity"]: r["n"] for r in rows}

    @staticmethod
    def _row(row: sqlite3.Row) -> Row:
        return Row(
            row["entity"],
            row["id"],
            row["version"],
            bool(row["deleted"]),
            json.loads(row["data"]),
            row["pending"],
        )


def _snake(key: str) -> str:
    """``currentValue`` -> ``current_value`` (snake_case keys are left as they are)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
