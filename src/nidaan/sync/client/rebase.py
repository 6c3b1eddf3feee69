"""Apply pending local ops on top of a synced row (Replicache-style rebase), without I/O.

The server is authoritative: this only predicts what a pending op will do so the local view
shows the user's intent until the server's answer is pulled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from nidaan.sync.client.model import Operation, OutboxOp


@dataclass(frozen=True)
class RowState:
    version: int | None
    deleted: bool
    data: dict[str, Any]


def apply_op(state: RowState | None, op: OutboxOp) -> RowState | None:
    """The row after ``op``; ``None`` stays ``None`` only for ops that need an existing row."""
    operation = op.operation
    if operation in (Operation.CREATE, Operation.APPEND):
        if state is None:
            return RowState(None, False, {"id": op.entity_id, **op.data})
        # The server already has the row (a replayed create): its values win, ours fill gaps.
        return replace(state, data={**op.data, **state.data})
    if operation == Operation.UPDATE:
        base = state or RowState(None, False, {"id": op.entity_id})
        return replace(base, data={**base.data, **op.data})
    if operation == Operation.DELETE:
        if state is None:
            return None
        return replace(state, deleted=True)
    if operation == Operation.TRANSITION:
        if state is None:
            return None
        extra = {key: value for key, value in op.data.items() if key != "to"}
        return replace(state, data={**state.data, **extra, "status": op.data.get("to")})
    return state


def rebase(state: RowState | None, ops: list[OutboxOp]) -> RowState | None:
    """Re-apply ``ops`` (in client_seq order) on ``state``."""
    for op in sorted(ops, key=lambda o: o.client_seq):
        state = apply_op(state, op)
    return state
