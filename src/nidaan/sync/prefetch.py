"""Read ahead for one push: what its ops would otherwise each ask the database for.

A push of 100 ops asked, op by op, whether a created row already exists, for the row an
update edits (locked) and for that row's merge stamps. Here the push asks once per entity
for all of them; the ops then find the answers in the session.
Everything read here is dropped when any savepoint of the push rolls back (objects changed
inside it are expired, stamps written inside it are gone), and the ops fall back to asking
themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, null, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from nidaan.kit.db import any_of
from nidaan.sync.context import Op
from nidaan.sync.models import SyncRowMeta
from nidaan.sync.registry import REGISTRY, EntityHandler

_NEW = "nidaan.sync.prefetch.new_ids"
_ROWS = "nidaan.sync.prefetch.rows"
_META = "nidaan.sync.prefetch.meta"


def _plain_loader(handler: EntityHandler) -> bool:
    # Only handlers that load their row the standard way: others load more (an order and its
    # tests) and keep doing it themselves.
    return type(handler).load_for_update is EntityHandler.load_for_update


async def read_ahead(session: AsyncSession, organisation_id: uuid.UUID, ops: Sequence[Op]) -> None:
    creates: dict[str, set[uuid.UUID]] = {}
    updates: dict[str, set[uuid.UUID]] = {}
    for op in ops:
        if op.entity not in REGISTRY:
            continue
        if op.operation == "create":
            creates.setdefault(op.entity, set()).add(op.entity_id)
        elif op.operation == "update" and _plain_loader(REGISTRY[op.entity]):
            updates.setdefault(op.entity, set()).add(op.entity_id)
    new_ids: set[tuple[str, uuid.UUID]] = set()
    rows: dict[tuple[str, uuid.UUID], Any] = {}
    meta: dict[tuple[str, uuid.UUID], dict[str, Any]] = {}
    for entity, ids in updates.items():
        wanted = creates.pop(entity, set())
        taken = await _locked_rows(session, organisation_id, entity, ids, wanted, rows)
        if taken is not None:
            new_ids.update((entity, i) for i in wanted - taken)
        elif wanted:
            creates[entity] = wanted  # no row to carry the answer: ask below
    for entity, ids in creates.items():
        model = REGISTRY[entity].model
        taken = set(await session.scalars(select(model.id).where(any_of(model.id, ids))))
        new_ids.update((entity, i) for i in ids - taken)
    if rows:
        # Read after the lock is held, in a statement of its own: a statement that waited for
        # the lock still reads other tables as they were when it started, and the stamps
        # of the transaction it waited for would be missed.
        keys = list(rows)
        found_meta = await session.execute(
            select(SyncRowMeta.entity, SyncRowMeta.entity_id, SyncRowMeta.field_meta).where(
                any_of(SyncRowMeta.entity_id, [entity_id for _, entity_id in keys])
            )
        )
        stored = {(e, i): m for e, i, m in found_meta}
        meta = {key: stored.get(key) or {} for key in keys}
    session.info[_NEW] = new_ids
    session.info[_ROWS] = rows
    session.info[_META] = meta


async def _locked_rows(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    entity: str,
    ids: set[uuid.UUID],
    created: set[uuid.UUID],
    rows: dict[tuple[str, uuid.UUID], Any],
) -> set[uuid.UUID] | None:
    """One statement: the rows updates edit (locked, in id order) and which of the ids
    creates use are taken (None: no row came back to carry that answer)."""
    model = REGISTRY[entity].model
    other = aliased(model)
    taken = (
        select(func.array_agg(other.id)).where(any_of(other.id, created)).scalar_subquery()
        if created
        else null()
    )
    found = await session.execute(
        select(model, taken)
        .where(any_of(model.id, ids), model.organisation_id == organisation_id)
        .order_by(model.id)
        .with_for_update(of=model)
        .execution_options(populate_existing=True)
    )
    answer: set[uuid.UUID] | None = None
    for row, taken_ids in found:
        rows[(entity, row.id)] = row
        answer = set(taken_ids or ())
    return answer


def add_row(session: AsyncSession, entity: str, row: Any) -> None:
    """A row this push created and has not written yet: later ops of the push edit it here
    (it has no committed stamps)."""
    session.info.setdefault(_ROWS, {})[(entity, row.id)] = row
    session.info.setdefault(_META, {})[(entity, row.id)] = {}


def take_new_id(session: AsyncSession, entity: str, entity_id: uuid.UUID) -> bool:
    """True once for an id the push found unused (a second create of it checks again)."""
    new_ids: set[tuple[str, uuid.UUID]] = session.info.get(_NEW, set())
    if (entity, entity_id) in new_ids:
        new_ids.discard((entity, entity_id))
        return True
    return False


def locked_row(session: AsyncSession, entity: str, entity_id: uuid.UUID) -> Any | None:
    rows: dict[tuple[str, uuid.UUID], Any] = session.info.get(_ROWS, {})
    return rows.get((entity, entity_id))


def stored_meta(session: AsyncSession, entity: str, entity_id: uuid.UUID) -> dict[str, Any] | None:
    """The committed merge stamps read ahead (None: not read ahead, ask the database)."""
    meta: dict[tuple[str, uuid.UUID], dict[str, Any]] = session.info.get(_META, {})
    return meta.get((entity, entity_id))


def stamps_written(session: AsyncSession, entity: str, entity_id: uuid.UUID) -> None:
    """An op wrote stamps for the row directly: read them from the database again."""
    session.info.get(_META, {}).pop((entity, entity_id), None)


def forget(session: AsyncSession) -> None:
    for key in (_NEW, _ROWS, _META):
        session.info.pop(key, None)
