"""Record audit entries inside the caller's transaction, verify the chains, list entries."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Select, bindparam, column, func, select, union, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.domain import (
    DEFAULT_SENSITIVE_KEYS,
    GENESIS_HASH,
    diff,
    entry_content,
    entry_hash,
)
from nidaan.audit.models import AccessLogEntry, AuditChainHead, AuditLog
from nidaan.audit.schemas import AuditActor
from nidaan.config import get_settings
from nidaan.kit import bundle
from nidaan.kit.aio import pause_every
from nidaan.kit.context import current_request_id
from nidaan.kit.db import add_after_commit_hook, any_of, session_scope, transaction_state
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.time import utcnow

_log = structlog.get_logger("nidaan.audit")
VERIFY_BATCH_SIZE = 1000
CHAIN_BATCH_SIZE = 1000
#: How long the background chainer waits after a commit before chaining (seconds).
CHAIN_LINGER_S = 0.2
_RECORDED = "audit.recorded_organisations"
# A chainer that found the head locked stops; the holder re-checks after its commit. The
# periodic sweep (audit.tasks) catches anything a crash left unchained.
_MAX_CHAIN_ROUNDS = 5

REASON_HASH_MISMATCH = "hash mismatch: content changed"
REASON_PREV_HASH = "prev_hash does not match previous entry"
REASON_HEAD_AHEAD = "chain head ahead of log: entries missing at end"
REASON_HEAD_MISMATCH = "chain head does not match last entry"
REASON_HEAD_MISSING = "chain head missing"
REASON_LOG_AHEAD = "log ahead of chain head: entries appended outside the chain"


REASON_DELETED = "entry deleted"
REASON_UNCHAINED = (
    "entry altered: its chain columns were cleared outside the application (content changed?)"
)


def reason_sequence_gap(expected: int) -> str:
    return f"sequence gap: expected {expected}"


@dataclass(frozen=True)
class AuditEntry:
    """One entry for ``record_many`` (the arguments of ``record``)."""

    organisation_id: uuid.UUID
    actor: AuditActor
    action: str
    entity_type: str
    entity_id: Any
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


@dataclass(frozen=True)
class BrokenLink:
    """Where a chain first fails to verify.

    ``seq`` and ``entry_id`` name the entry that failed a check (for a gap: the entry
    found where ``expected`` should have been). When entries are missing at the end,
    ``seq`` is the first missing number and ``entry_id`` is None.
    """

    organisation_id: uuid.UUID
    seq: int
    entry_id: uuid.UUID | None
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    organisations_checked: int
    entries_checked: int
    first_broken: BrokenLink | None


_ENTRY_COLUMNS = (
    AuditLog.id,
    AuditLog.organisation_id,
    AuditLog.seq,
    AuditLog.occurred_at,
    AuditLog.actor_kind,
    AuditLog.actor_id,
    AuditLog.actor_label,
    AuditLog.action,
    AuditLog.entity_type,
    AuditLog.entity_id,
    AuditLog.changes,
    AuditLog.request_id,
    AuditLog.prev_hash,
    AuditLog.hash,
    AuditLog.prev_id,
)


_TABLE = AuditLog.__table__
_LINKS = (
    func.jsonb_to_recordset(bindparam("links", type_=JSONB))
    .table_valued(
        column("id", _TABLE.c.id.type),
        column("seq", _TABLE.c.seq.type),
        column("prev_hash", _TABLE.c.prev_hash.type),
        column("hash", _TABLE.c.hash.type),
        column("prev_id", _TABLE.c.prev_id.type),
        name="links",
    )
    .render_derived(with_types=True)
)
#: Give a run of entries their chain columns (the only UPDATE the log's triggers allow).
_SET_LINKS = (
    update(_TABLE)
    .where(_TABLE.c.id == _LINKS.c.id)
    .values(
        seq=_LINKS.c.seq,
        prev_hash=_LINKS.c.prev_hash,
        hash=_LINKS.c.hash,
        prev_id=_LINKS.c.prev_id,
    )
)


def _row(
    organisation_id: uuid.UUID,
    actor: AuditActor,
    action: str,
    entity_type: str,
    entity_id: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    sensitive: frozenset[str],
) -> dict[str, Any]:
    """An entry's columns as written (the chain columns stay empty until it is chained)."""
    return {
        "id": new_id(),
        "organisation_id": organisation_id,
        "occurred_at": utcnow(),
        "actor_kind": actor.kind,
        "actor_id": actor.id,
        "actor_label": actor.label,
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "changes": diff(before, after, sensitive),
        "request_id": current_request_id(),
    }


def _chain_after(session: AsyncSession, organisation_ids: set[uuid.UUID]) -> None:
    """Chain the organisations' new entries once this transaction commits."""
    organisations: set[uuid.UUID] = transaction_state(session, _RECORDED, set)
    organisations |= organisation_ids
    add_after_commit_hook(session, _RECORDED, lambda: _chain_after_commit(organisations))


class AuditService:
    async def record(
        self,
        session: AsyncSession,
        *,
        organisation_id: uuid.UUID,
        actor: AuditActor,
        action: str,
        entity_type: str,
        entity_id: Any,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        sensitive: frozenset[str] = DEFAULT_SENSITIVE_KEYS,
    ) -> AuditLog:
        """Append one entry to the organisation's chain, in ``session``'s transaction.

        ``before``/``after`` are the record's fields; only changed ones are stored and
        secrets are redacted. The entry is written when the transaction commits; a
        statement of the session that reads the audit log writes pending entries first.
        The returned object is not in the session (read the entry back to get the stored
        row).
        """
        row = _row(organisation_id, actor, action, entity_type, entity_id, before, after, sensitive)
        # Not written here: the transaction's bundle carries it (nidaan.kit.bundle), with
        # the other entries, the outbox events and change capture, in one statement at
        # commit — in the caller's transaction, and before any statement of the session
        # that reads the audit log. Chained (seq and hashes) right after the transaction
        # commits, so audited requests of one lab do not queue behind each other's commits.
        bundle.defer_insert(session, _TABLE, [row])
        _chain_after(session, {organisation_id})
        return AuditLog(**row)

    async def record_entry(
        self,
        session: AsyncSession,
        entry: AuditEntry,
        sensitive: frozenset[str] = DEFAULT_SENSITIVE_KEYS,
    ) -> AuditLog:
        """``record`` for an entry prepared by another service."""
        return await self.record(
            session,
            organisation_id=entry.organisation_id,
            actor=entry.actor,
            action=entry.action,
            entity_type=entry.entity_type,
            entity_id=entry.entity_id,
            before=entry.before,
            after=entry.after,
            sensitive=sensitive,
        )

    async def record_many(
        self,
        session: AsyncSession,
        entries: Sequence[AuditEntry],
        sensitive: frozenset[str] = DEFAULT_SENSITIVE_KEYS,
    ) -> None:
        """``record`` for several entries (bulk paths such as analyzer results); entries
        keep their order (ids are time-ordered UUIDv7)."""
        if not entries:
            return
        rows = []
        for index, e in enumerate(entries):
            await pause_every(index)
            rows.append(
                _row(
                    e.organisation_id,
                    e.actor,
                    e.action,
                    e.entity_type,
                    e.entity_id,
                    e.before,
                    e.after,
                    sensitive,
                )
            )
        bundle.defer_insert(session, _TABLE, rows)
        _chain_after(session, {e.organisation_id for e in entries})

    async def record_access(
        self,
        session: AsyncSession,
        *,
        organisation_id: uuid.UUID,
        actor: AuditActor,
        patient_id: uuid.UUID,
        entity_type: str,
        entity_id: Any,
        action: str = "view",
    ) -> None:
        """Log that ``actor`` opened a patient's record or report (the read-access log);
        one plain INSERT in the request's transaction, no chaining."""
        await session.execute(
            pg_insert(AccessLogEntry.__table__).values(
                id=new_id(),
                organisation_id=organisation_id,
                at=utcnow(),
                patient_id=patient_id,
                actor_kind=actor.kind,
                actor_id=actor.id,
                actor_label=actor.label[:200],
                entity_type=entity_type,
                entity_id=str(entity_id),
                action=action,
                request_id=current_request_id(),
            )
        )

    async def access_log(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        patient_ids: Sequence[uuid.UUID],
        page: PageParams,
    ) -> tuple[list[AccessLogEntry], int]:
        """Who opened these patients' records, newest first."""
        statement = (
            select(AccessLogEntry)
            .where(
                AccessLogEntry.organisation_id == organisation_id,
                AccessLogEntry.patient_id.in_(list(patient_ids)),
            )
            .order_by(AccessLogEntry.at.desc(), AccessLogEntry.id.desc())
        )
        return await paginate(session, statement, page)

    async def flush(self, session: AsyncSession) -> None:
        """Chain, in this transaction, the entries this session recorded (tests, verify)."""
        organisations: set[uuid.UUID] = transaction_state(session, _RECORDED, set)
        for organisation_id in sorted(organisations):
            await self.chain_pending(session, organisation_id, wait=True)

    async def chain_pending(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        *,
        wait: bool,
        create_head: bool = True,
    ) -> int | None:
        """Give the organisation's committed unchained entries their seq and hashes.

        Takes the chain head's row lock, so chainers of one tenant take turns and never fork
        the chain. With ``wait=False`` returns None at once when another chainer holds it
        (that one re-checks after its commit). Returns how many entries were chained.
        """
        head = AuditChainHead.__table__
        if create_head:
            await session.execute(
                pg_insert(head)
                .values(organisation_id=organisation_id, last_seq=0, last_hash=GENESIS_HASH)
                .on_conflict_do_nothing(index_elements=[head.c.organisation_id])
            )
        locked = (
            await session.execute(
                select(head.c.last_seq, head.c.last_hash, head.c.last_entry_id)
                .where(head.c.organisation_id == organisation_id)
                .with_for_update(skip_locked=not wait)
            )
        ).one_or_none()
        if locked is None:
            return None
        seq, prev_hash, prev_id = locked
        chained = 0
        after: uuid.UUID | None = None
        while True:
            pending = select(*_ENTRY_COLUMNS).where(
                AuditLog.organisation_id == organisation_id, AuditLog.hash.is_(None)
            )
            if after is not None:
                pending = pending.where(AuditLog.id > after)
            rows = (
                await session.execute(pending.order_by(AuditLog.id).limit(CHAIN_BATCH_SIZE))
            ).all()
            if not rows:
                break
            after = rows[-1].id
            tampered = await _chained_before(
                session, organisation_id, [row.id for row in rows], locked.last_entry_id
            )
            links: list[dict[str, Any]] = []
            for index, row in enumerate(rows):
                await pause_every(index)
                if row.id in tampered:
                    continue
                seq += 1
                entry_hash_value = entry_hash(prev_hash, content_of(row, seq))
                links.append(
                    {
                        "id": str(row.id),
                        "seq": seq,
                        "prev_hash": prev_hash,
                        "hash": entry_hash_value,
                        "prev_id": None if prev_id is None else str(prev_id),
                    }
                )
                prev_hash = entry_hash_value
                prev_id = row.id
            if not links:
                continue
            # One statement for the whole run of entries, not one execution per entry; the
            # links travel as one JSON document (encoded in C), which costs a fraction of
            # five text-format arrays quoted element by element.
            await session.execute(_SET_LINKS, {"links": links})
            chained += len(links)
            if len(rows) < CHAIN_BATCH_SIZE:
                break
        if chained:
            await session.execute(
                update(head)
                .where(head.c.organisation_id == organisation_id)
                .values(last_seq=seq, last_hash=prev_hash, last_entry_id=prev_id)
            )
        return chained

    async def verify(
        self, session: AsyncSession, organisation_id: uuid.UUID | None = None
    ) -> VerifyReport:
        """Chain what is pending, then recompute every chain (or one organisation's) and
        report the first broken link."""
        if organisation_id is not None:
            organisation_ids = [organisation_id]
        else:
            # Heads and log together: a log whose head was deleted must be checked too.
            query = union(
                select(AuditChainHead.organisation_id),
                select(AuditLog.organisation_id).distinct(),
            ).order_by("organisation_id")
            organisation_ids = list((await session.scalars(select(query.subquery()))).all())
        for pending_organisation in organisation_ids:
            # Chain entries still waiting, and hold each head until this check ends. A head
            # is created only for a chain that has none yet: a missing head next to chained
            # entries is a finding, not something to repair.
            await self.chain_pending(
                session,
                pending_organisation,
                wait=True,
                create_head=not await _has_chained(session, pending_organisation),
            )

        entries_checked = 0
        for index, org_id in enumerate(organisation_ids, start=1):
            checked, broken = await self._verify_chain(session, org_id)
            entries_checked += checked
            if broken is not None:
                return VerifyReport(False, index, entries_checked, broken)
        return VerifyReport(True, len(organisation_ids), entries_checked, None)

    async def _verify_chain(
        self, session: AsyncSession, organisation_id: uuid.UUID
    ) -> tuple[int, BrokenLink | None]:
        """Walk one chain in seq order; return (entries checked, first broken link)."""
        # Read the head first and walk only up to it: writers committing meanwhile append
        # beyond it and must not look like a broken tail.
        head = await _head(session, organisation_id)
        if head is None:
            first = await session.scalar(
                select(AuditLog.id)
                .where(AuditLog.organisation_id == organisation_id, AuditLog.hash.is_not(None))
                .order_by(AuditLog.seq)
                .limit(1)
            )
            if first is None:
                return 0, None  # an organisation that never recorded anything
            if await _head(session, organisation_id) is None:  # not just created meanwhile
                return 0, BrokenLink(organisation_id, 1, first, REASON_HEAD_MISSING)
            return await self._verify_chain(session, organisation_id)
        head_seq, head_hash = head

        expected_seq = 1
        prev_hash = GENESIS_HASH
        checked = 0
        while expected_seq <= head_seq:
            # Keyset pagination on the (organisation_id, seq) unique index: constant memory
            # and no OFFSET rescans, however long the chain.
            rows = (
                await session.execute(
                    select(*_ENTRY_COLUMNS)
                    .where(
                        AuditLog.organisation_id == organisation_id,
                        AuditLog.seq >= expected_seq,
                        AuditLog.seq <= head_seq,
                    )
                    .order_by(AuditLog.seq)
                    .limit(VERIFY_BATCH_SIZE)
                )
            ).all()
            for row in rows:
                checked += 1
                if row.seq != expected_seq:
                    return checked, await _explain_missing(
                        session, organisation_id, expected_seq, row.prev_id, found=row
                    )
                broken = _check_entry(row, expected_seq, prev_hash)
                if broken is not None:
                    return checked, broken
                expected_seq += 1
                prev_hash = row.hash
            if len(rows) < VERIFY_BATCH_SIZE:
                break

        last_seq = expected_seq - 1
        if last_seq < head_seq:
            last_entry_id = await session.scalar(
                select(AuditChainHead.last_entry_id).where(
                    AuditChainHead.organisation_id == organisation_id
                )
            )
            missing = last_entry_id if last_seq + 1 == head_seq else None
            return checked, await _explain_missing(
                session, organisation_id, last_seq + 1, missing, found=None
            )
        if head_hash != prev_hash:
            return checked, BrokenLink(organisation_id, last_seq, None, REASON_HEAD_MISMATCH)
        return checked, await _entries_beyond_head(session, organisation_id)

    async def list_entries(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        *,
        entity_type: str | None = None,
        entity_id: str | None = None,
        action: str | None = None,
        page: PageParams,
    ) -> tuple[list[AuditLog], int]:
        """One page of an organisation's entries, newest first, and the total matching."""
        statement: Select[Any] = select(AuditLog).where(AuditLog.organisation_id == organisation_id)
        if entity_type is not None:
            statement = statement.where(AuditLog.entity_type == entity_type)
        if entity_id is not None:
            statement = statement.where(AuditLog.entity_id == str(entity_id))
        if action is not None:
            statement = statement.where(AuditLog.action == action)
        # Ids are UUIDv7, so id order is time order; it is also the order entries are
        # chained in, and it covers entries not chained yet.
        return await paginate(session, statement.order_by(AuditLog.id.desc()), page)


def content_of(entry: Any, seq: int | None = None) -> dict[str, Any]:
    """The hashed content of an ``AuditLog`` or a row with the same column names (with
    ``seq`` in place of its own, for an entry being chained)."""
    return entry_content(
        organisation_id=entry.organisation_id,
        seq=entry.seq if seq is None else seq,
        occurred_at=entry.occurred_at,
        actor_kind=entry.actor_kind,
        actor_id=entry.actor_id,
        actor_label=entry.actor_label,
        action=entry.action,
        entity_type=entry.entity_type,
        entity_id=entry.entity_id,
        changes=entry.changes,
        request_id=entry.request_id,
    )


async def _head(session: AsyncSession, organisation_id: uuid.UUID) -> tuple[int, str] | None:
    row = (
        await session.execute(
            select(AuditChainHead.last_seq, AuditChainHead.last_hash).where(
                AuditChainHead.organisation_id == organisation_id
            )
        )
    ).one_or_none()
    return None if row is None else (row.last_seq, row.last_hash)


async def _entries_beyond_head(
    session: AsyncSession, organisation_id: uuid.UUID
) -> BrokenLink | None:
    """Find entries appended without moving the head (forged inserts), if any."""
    max_seq = await session.scalar(
        select(func.max(AuditLog.seq)).where(AuditLog.organisation_id == organisation_id)
    )
    # Re-read the head *after* the log: a writer commits its entry and its head move
    # together, so anything a legitimate writer added is covered by this newer head.
    head = await _head(session, organisation_id)
    if max_seq is None or head is None or max_seq <= head[0]:
        return None
    first = (
        await session.execute(
            select(AuditLog.id, AuditLog.seq)
            .where(AuditLog.organisation_id == organisation_id, AuditLog.seq > head[0])
            .order_by(AuditLog.seq)
            .limit(1)
        )
    ).one()
    return BrokenLink(organisation_id, first.seq, first.id, REASON_LOG_AHEAD)


async def _chained_before(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    ids: list[uuid.UUID],
    last_entry_id: uuid.UUID | None,
) -> set[uuid.UUID]:
    """Those of ``ids`` (entries without chain columns) that were chained once: a later
    entry, or the chain head, points at them. Their chain columns were cleared outside
    the application (triggers off); chaining them anew would hide the change."""
    pointed_at = set(
        await session.scalars(
            select(AuditLog.prev_id).where(
                AuditLog.organisation_id == organisation_id, any_of(AuditLog.prev_id, ids)
            )
        )
    )
    if last_entry_id is not None and last_entry_id in ids:
        pointed_at.add(last_entry_id)
    for entry_id in sorted(pointed_at):
        _log.error(
            "audit_entry_unchained_after_chaining",
            organisation_id=str(organisation_id),
            entry_id=str(entry_id),
        )
    return pointed_at


async def _explain_missing(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    seq: int,
    entry_id: uuid.UUID | None,
    *,
    found: Any,
) -> BrokenLink:
    """Why entry ``seq`` is not where it should be; ``entry_id`` is the entry that was there
    (the next entry's ``prev_id``, or the head's last entry), when known."""
    if entry_id is None:
        if found is None:
            return BrokenLink(organisation_id, seq, None, REASON_HEAD_AHEAD)
        return BrokenLink(organisation_id, seq, found.id, reason_sequence_gap(seq))
    current = (
        await session.execute(
            select(AuditLog.seq, AuditLog.hash).where(
                AuditLog.id == entry_id, AuditLog.organisation_id == organisation_id
            )
        )
    ).one_or_none()
    if current is None:
        return BrokenLink(organisation_id, seq, entry_id, REASON_DELETED)
    return BrokenLink(organisation_id, seq, entry_id, REASON_UNCHAINED)


def _check_entry(row: Any, expected_seq: int, prev_hash: str) -> BrokenLink | None:
    """Check one entry against its expected position; None when it is intact."""
    if row.seq != expected_seq:
        return BrokenLink(row.organisation_id, row.seq, row.id, reason_sequence_gap(expected_seq))
    if row.prev_hash != prev_hash:
        return BrokenLink(row.organisation_id, row.seq, row.id, REASON_PREV_HASH)
    if entry_hash(row.prev_hash, content_of(row)) != row.hash:
        return BrokenLink(row.organisation_id, row.seq, row.id, REASON_HASH_MISMATCH)
    return None


audit_service = AuditService()


class BackgroundChainer:
    """Chains committed entries off the request path, many requests' entries at a time.

    Started by the server (``nidaan serve``); where it is not running (CLI commands, a
    standalone worker, tests) chaining happens inline right after the commit instead.
    """

    def __init__(self) -> None:
        self._dirty: set[uuid.UUID] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="nidaan-audit-chainer")

    async def stop(self) -> None:
        """Stop, then chain whatever is still marked (best effort; the sweep catches up)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._chain(sorted(self._dirty))

    def schedule(self, organisation_ids: set[uuid.UUID]) -> None:
        self._dirty |= organisation_ids
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # A moment's wait lets a busy lab's commits pile up: one chaining round for many
            # transactions instead of one each (the entries are committed meanwhile).
            await asyncio.sleep(CHAIN_LINGER_S)
            self._wake.clear()
            while self._dirty:
                batch = sorted(self._dirty)
                self._dirty.clear()
                await self._chain(batch)

    async def _chain(self, organisation_ids: list[uuid.UUID]) -> None:
        for organisation_id in organisation_ids:
            try:
                await chain_in_own_transactions(organisation_id)
            except Exception:
                _log.exception("audit_chaining_failed", organisation_id=str(organisation_id))


chainer = BackgroundChainer()


async def _chain_after_commit(organisation_ids: set[uuid.UUID]) -> None:
    """Chain what the committed transaction recorded (in the background when possible)."""
    if chainer.running:
        chainer.schedule(set(organisation_ids))
        return
    for organisation_id in sorted(organisation_ids):
        await chain_in_own_transactions(organisation_id)


async def chain_in_own_transactions(organisation_id: uuid.UUID) -> None:
    """Chain pending entries until none are left or another chainer has the head."""
    settings = get_settings()
    for _ in range(_MAX_CHAIN_ROUNDS):
        async with session_scope(settings) as session:
            chained = await audit_service.chain_pending(session, organisation_id, wait=False)
        if not chained:
            # None: the holder of the head re-checks after its own commit. 0: nothing
            # chainable (later commits chain themselves).
            return
        async with session_scope(settings) as session:
            if not await _has_unchained(session, organisation_id):
                return


async def _has_chained(session: AsyncSession, organisation_id: uuid.UUID) -> bool:
    return bool(
        await session.scalar(
            select(AuditLog.id)
            .where(AuditLog.organisation_id == organisation_id, AuditLog.hash.is_not(None))
            .limit(1)
        )
    )


async def _has_unchained(session: AsyncSession, organisation_id: uuid.UUID) -> bool:
    return bool(
        await session.scalar(
            select(AuditLog.id)
            .where(AuditLog.organisation_id == organisation_id, AuditLog.hash.is_(None))
            .limit(1)
        )
    )
