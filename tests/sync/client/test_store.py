"""The local SQLite file: atomic writes, contiguous client seqs, rebase, reset keeps the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from nidaan.sync.client.model import Change, LocalOp, Operation
from nidaan.sync.client.store import LocalStore


def _queue(store: LocalStore, *ops: LocalOp, group: str | None = None) -> list[int]:
    hlcs = [f"{1_000 + i:015d}-00000-test" for i in range(len(ops))]
    queued = store.queue(ops, hlcs=hlcs, schema_version=2, tx_group=group)
    return [op.client_seq for op in queued]


def _change(entity_id: str, version: int, seq: int, **data: object) -> Change:
    return Change(seq, "patient", entity_id, False, version, {"id": entity_id, **data})


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "agent.sqlite")


def test_client_id_is_made_once_and_survives_a_restart(tmp_path: Path) -> None:
    first = LocalStore(tmp_path / "a.sqlite")
    client_id = first.client_id
    first.close()
    assert LocalStore(tmp_path / "a.sqlite").client_id == client_id


def test_a_local_write_puts_view_row_and_outbox_row_together(store: LocalStore) -> None:
    _queue(store, LocalOp("patient", Operation.CREATE, "p1", {"full_name": "Asha"}))
    assert store.get("patient", "p1").data == {"id": "p1", "full_name": "Asha"}
    assert [op.entity_id for op in store.pending()] == ["p1"]


def test_a_failed_write_leaves_neither_row_nor_op_nor_seq(store: LocalStore) -> None:
    good = LocalOp("patient", Operation.CREATE, "p1", {"full_name": "Asha"})
    broken = LocalOp(None, Operation.CREATE, "p2", {})  # type: ignore[arg-type]
    with pytest.raises(Exception, match="NOT NULL"):
        _queue(store, good, broken)
    assert store.get("patient", "p1") is None
    assert store.pending() == []
    assert _queue(store, good) == [1]


def test_an_outer_transaction_rolls_back_every_write_inside_it(store: LocalStore) -> None:
    def write_then_crash() -> None:
        with store.transaction():
            _queue(store, LocalOp("patient", Operation.CREATE, "p1", {}))
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        write_then_crash()
    assert store.pending_count() == 0
    assert store.get("patient", "p1") is None


def test_client_seqs_are_contiguous_in_order_and_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    store = LocalStore(path)
    assert _queue(store, *[LocalOp("patient", "update", f"p{i}", {"x": i}) for i in range(3)]) == [
        1,
        2,
        3,
    ]
    store.acknowledge(store.pending()[0].op_id)
    store.close()

    reopened = LocalStore(path)  # unacknowledged ops survive a restart
    assert [op.client_seq for op in reopened.pending()] == [2, 3]
    assert _queue(reopened, LocalOp("patient", "update", "p9", {"x": 9})) == [4]
    assert [op.client_seq for op in reopened.pending()] == [2, 3, 4]


def test_ops_of_one_user_action_share_a_tx_group(store: LocalStore) -> None:
    _queue(
        store,
        LocalOp("order", Operation.CREATE, "o1", {"patient_id": "p1"}),
        LocalOp("payment", Operation.APPEND, "pay1", {"order_id": "o1", "amount": "100"}),
        group="g1",
    )
    assert {op.tx_group for op in store.pending()} == {"g1"}


def test_update_takes_the_synced_version_as_base(store: LocalStore) -> None:
    store.apply_changes([_change("p1", 7, 10, mobile="98")], "c1")
    _queue(store, LocalOp("patient", Operation.UPDATE, "p1", {"mobile": "99"}))
    assert store.pending()[0].base_version == 7


def test_pending_ops_are_rebased_on_pulled_rows(store: LocalStore) -> None:
    store.apply_changes([_change("p1", 1, 1, full_name="Asha", mobile="98", city="Pune")], "c1")
    _queue(store, LocalOp("patient", Operation.UPDATE, "p1", {"mobile": "99"}))

    # Someone else changed the city on the server; our mobile edit is still pending.
    store.apply_changes([_change("p1", 2, 5, full_name="Asha", mobile="98", city="Agra")], "c2")

    view = store.get("patient", "p1")
    assert view.data["city"] == "Agra"
    assert view.data["mobile"] == "99"
    assert view.pending == 1
    assert store.synced("patient", "p1").data["mobile"] == "98"
    assert store.get_meta("cursor") == "c2"


def test_an_acknowledged_op_leaves_the_view_to_the_server(store: LocalStore) -> None:
    store.apply_changes([_change("p1", 1, 1, mobile="98")], "c1")
    _queue(store, LocalOp("patient", Operation.UPDATE, "p1", {"mobile": "99"}))
    store.fail(store.pending()[0].op_id, "forbidden")
    assert store.get("patient", "p1").data["mobile"] == "98"
    [failed] = store.failed()
    assert (failed.reason, failed.op.data) == ("forbidden", {"mobile": "99"})
    assert store.pending_count() == 0


def test_transition_and_delete_show_locally(store: LocalStore) -> None:
    store.apply_changes(
        [Change(1, "sample", "s1", False, 1, {"id": "s1", "status": "pending"})], "c1"
    )
    store.apply_changes([_change("p1", 1, 2)], "c2")
    _queue(store, LocalOp("sample", Operation.TRANSITION, "s1", {"to": "collected"}))
    _queue(store, LocalOp("patient", Operation.DELETE, "p1", {}))
    assert store.get("sample", "s1").data["status"] == "collected"
    assert store.get("patient", "p1").deleted
    assert store.rows("patient") == []


def test_reset_drops_synced_rows_and_cursor_but_keeps_the_outbox(store: LocalStore) -> None:
    store.apply_changes([_change("p1", 1, 1, mobile="98"), _change("p2", 1, 2)], "c1")
    _queue(store, LocalOp("patient", Operation.UPDATE, "p1", {"mobile": "99"}))
    _queue(store, LocalOp("patient", Operation.CREATE, "p3", {"full_name": "New"}))

    store.reset_synced()

    assert store.get_meta("cursor") is None
    assert store.synced("patient", "p1") is None
    assert store.get("patient", "p2") is None
    assert [op.entity_id for op in store.pending()] == ["p1", "p3"]
    # Local intent stays visible until the pull refills the table.
    assert store.get("patient", "p3").data["full_name"] == "New"
    store.apply_changes([_change("p1", 4, 9, mobile="98", city="Agra")], "c9")
    assert store.get("patient", "p1").data == {"id": "p1", "mobile": "99", "city": "Agra"}


def test_renumber_keeps_order_and_makes_seqs_contiguous(store: LocalStore) -> None:
    _queue(store, *[LocalOp("patient", "update", f"p{i}", {}) for i in range(4)])
    store.acknowledge(store.pending()[0].op_id)
    ids = [op.op_id for op in store.pending()]
    store.renumber(1)
    assert [(op.op_id, op.client_seq) for op in store.pending()] == list(
        zip(ids, [1, 2, 3], strict=True)
    )
    assert _queue(store, LocalOp("patient", "update", "p9", {})) == [4]


def test_conflicts_are_counted_until_a_pull_says_resolved(store: LocalStore) -> None:
    store.record_conflict("k1", op_id="op1", data={"entity": "patient", "entityId": "p1"})
    assert store.open_conflict_count() == 1
    store.apply_changes(
        [Change(3, "conflict", "k1", False, 2, {"id": "k1", "status": "RESOLVED"})], "c3"
    )
    assert store.open_conflict_count() == 0
    [conflict] = store.conflicts()
    assert (conflict.op_id, conflict.entity_id, conflict.status) == ("op1", "p1", "RESOLVED")


def test_a_conflict_keeps_the_latest_value_of_each_field_whatever_its_spelling(
    store: LocalStore,
) -> None:
    """An op answer (camelCase) then a pulled row (snake_case): the pulled, later values win."""
    store.record_conflict(
        "k2",
        op_id="op2",
        data={"entityId": "p2", "status": "OPEN", "currentValue": True, "serverValue": True},
    )
    store.apply_changes(
        [
            Change(
                4,
                "conflict",
                "k2",
                False,
                4,
                {"id": "k2", "status": "SUPERSEDED", "current_value": None, "server_value": True},
            )
        ],
        "c4",
    )
    [conflict] = store.conflicts("SUPERSEDED")
    assert conflict.entity_id == "p2"
    assert conflict.data["current_value"] is None
    assert "currentValue" not in conflict.data
