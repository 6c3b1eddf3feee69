"""Push batches: at most 100 ops or 256 KB, in order, never splitting a tx group."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nidaan.sync.client.batching import MAX_BATCH_BYTES, op_size, split_batches
from nidaan.sync.client.model import OutboxOp


def _op(seq: int, group: str | None = None, payload: int = 10) -> OutboxOp:
    return OutboxOp(
        op_id=f"op-{seq}",
        client_seq=seq,
        entity="patient",
        entity_id=f"p{seq}",
        operation="update",
        data={"address": "x" * payload},
        base_version=1,
        hlc=f"{seq:015d}-00000-c",
        schema_version=2,
        tx_group=group,
        attempts=0,
        created_at="2025-01-01T00:00:00Z",
    )


@st.composite
def outboxes(draw: st.DrawFn) -> list[OutboxOp]:
    """Runs of ops, some grouped (a group's ops are consecutive, as the store writes them)."""
    ops: list[OutboxOp] = []
    for run in range(draw(st.integers(0, 40))):
        size = draw(st.integers(1, 30))
        group = f"g{run}" if size > 1 or draw(st.booleans()) else None
        payload = draw(st.sampled_from([10, 500, 20_000]))
        ops.extend(_op(len(ops) + 1, group, payload) for _ in range(size))
    return ops


# No deadline: large generated outboxes on a busy CI machine are slow, not wrong.
@settings(deadline=None)
@given(outboxes(), st.integers(1, 120), st.sampled_from([2_000, 50_000, MAX_BATCH_BYTES]))
def test_batches_keep_order_limits_and_groups(
    ops: list[OutboxOp], max_ops: int, max_bytes: int
) -> None:
    batches = split_batches(ops, max_ops=max_ops, max_bytes=max_bytes)
    assert [op for batch in batches for op in batch] == ops  # nothing lost or reordered
    for batch in batches:
        groups_here = {op.tx_group for op in batch} - {None}
        single_group = len({op.tx_group for op in batch}) == 1
        within = len(batch) <= max_ops and sum(map(op_size, batch)) <= max_bytes
        # Over the limits only when the batch is one indivisible group.
        assert within or single_group
        for other in batches:
            if other is not batch:
                assert not groups_here & {op.tx_group for op in other}


def test_a_full_outbox_goes_in_batches_of_100() -> None:
    sizes = [len(b) for b in split_batches([_op(i) for i in range(1, 251)])]
    assert sizes == [100, 100, 50]


def test_the_byte_limit_cuts_a_batch() -> None:
    ops = [_op(i, payload=100_000) for i in range(1, 6)]
    assert [len(b) for b in split_batches(ops)] == [2, 2, 1]


def test_a_group_that_does_not_fit_waits_for_the_next_batch() -> None:
    ops = [_op(i) for i in range(1, 96)] + [_op(i, "g") for i in range(96, 106)]
    batches = split_batches(ops)
    assert [len(b) for b in batches] == [95, 10]
    assert {op.tx_group for op in batches[1]} == {"g"}


def test_a_group_bigger_than_the_limit_is_sent_whole() -> None:
    ops = [_op(i, "big") for i in range(1, 151)] + [_op(151)]
    assert [len(b) for b in split_batches(ops)] == [150, 1]
