"""Cut the outbox into push batches: at most N ops or B bytes, never splitting a tx group."""

from __future__ import annotations

import json
from collections.abc import Sequence

from nidaan.sync.client.model import OutboxOp

MAX_BATCH_OPS = 100
MAX_BATCH_BYTES = 256 * 1024


def op_size(op: OutboxOp) -> int:
    """Bytes the op takes in the request body (its JSON input)."""
    return len(json.dumps(op.to_input(), separators=(",", ":"), default=str).encode())


def _groups(ops: Sequence[OutboxOp]) -> list[list[OutboxOp]]:
    """Consecutive ops sharing a tx_group form one unit; an op without a group is its own."""
    groups: list[list[OutboxOp]] = []
    for op in ops:
        if groups and op.tx_group is not None and groups[-1][-1].tx_group == op.tx_group:
            groups[-1].append(op)
        else:
            groups.append([op])
    return groups


def next_batch(
    ops: Sequence[OutboxOp], *, max_ops: int = MAX_BATCH_OPS, max_bytes: int = MAX_BATCH_BYTES
) -> list[OutboxOp]:
    """The longest prefix of ``ops`` (in client_seq order) within the limits.

    A first group larger than the limits is sent alone: the server must see it whole, and
    holding it back would block every op behind it.
    """
    batch: list[OutboxOp] = []
    size = 0
    for group in _groups(ops):
        group_size = sum(op_size(op) for op in group)
        if batch and (len(batch) + len(group) > max_ops or size + group_size > max_bytes):
            break
        batch.extend(group)
        size += group_size
        if len(batch) >= max_ops or size >= max_bytes:
            break
    return batch


def split_batches(
    ops: Sequence[OutboxOp], *, max_ops: int = MAX_BATCH_OPS, max_bytes: int = MAX_BATCH_BYTES
) -> list[list[OutboxOp]]:
    """Every batch, in order (the engine sends one at a time; this is for planning and tests)."""
    batches: list[list[OutboxOp]] = []
    rest = list(ops)
    while rest:
        batch = next_batch(rest, max_ops=max_ops, max_bytes=max_bytes)
        batches.append(batch)
        rest = rest[len(batch) :]
    return batches
