"""queueOperation, getSyncStatus, counter payments and sample steps over sync."""

from __future__ import annotations

from nidaan.kit.ids import new_id
from tests.sync.conftest import Device, SyncLab, gql
from tests.sync.test_orders_sync import placed_order

QUEUE = """
mutation Q($entity: String!, $operation: String!, $data: JSON!, $entityId: ID) {
  queueOperation(entity: $entity, operation: $operation, data: $data, entityId: $entityId) {
    status reason entityId
  }
}
"""
STATUS = """
query S($clientId: ID, $entity: String) {
  getSyncStatus(clientId: $clientId, entityType: $entity) {
    headSeq pulledSeq lag acknowledgedOps lastClientSeq openConflicts lastSyncAt
    tombstoneHorizonSeq tombstoneHorizonDays epoch schemaVersions { min max } clockSuspect
  }
}
"""


async def test_queue_operation_applies_at_once(live_client, sync_lab: SyncLab) -> None:  # type: ignore[no-untyped-def]
    patient_id = str(new_id())
    data = {
        "full_name": "Meera Nair",
        "sex": "female",
        "age_years": 29,
        "registered_at_branch_id": str(sync_lab.cc1.id),
    }
    body = await gql(
        live_client,
        sync_lab.desk1,
        QUEUE,
        entity="patient",
        operation="create",
        data=data,
        entityId=patient_id,
    )
    assert body["data"]["queueOperation"] == {
        "status": "APPLIED",
        "reason": None,
        "entityId": patient_id,
    }
    refused = await gql(
        live_client,
        sync_lab.desk1,
        QUEUE,
        entity="patient",
        operation="update",
        data={"pincode": "12"},
        entityId=patient_id,
    )
    assert refused["data"]["queueOperation"]["status"] == "REJECTED"
    device = Device(live_client, sync_lab.desk1)
    await device.sync()
    assert device.row("patient", patient_id)["data"]["full_name"] == "Meera Nair"


async def test_status_counts_a_devices_progress(live_client, sync_lab: SyncLab) -> None:  # type: ignore[no-untyped-def]
    device = Device(live_client, sync_lab.desk1)
    patient_id = str(new_id())
    data = {
        "full_name": "Ravi Rao",
        "sex": "male",
        "age_years": 61,
        "registered_at_branch_id": str(sync_lab.cc1.id),
    }
    await device.sync(device.op("patient", patient_id, "create", data))
    body = await gql(live_client, sync_lab.desk1, STATUS, clientId=device.id)
    status = body["data"]["getSyncStatus"]
    assert status["acknowledgedOps"] == 1
    assert status["lastClientSeq"] == 1
    assert status["lag"] == 0
    assert status["pulledSeq"] == status["headSeq"] > 0
    assert status["schemaVersions"] == {"min": 1, "max": 2}
    assert status["clockSuspect"] is False
    assert status["tombstoneHorizonDays"] == 45
    assert status["lastSyncAt"] is not None
    other = await gql(live_client, sync_lab.admin, STATUS, clientId=device.id)
    assert other["errors"][0]["extensions"]["code"] == "sync_client_mismatch"


async def test_payment_and_sample_steps(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session
) -> None:
    desk = Device(live_client, sync_lab.desk1)
    _, order_id = await placed_order(desk, sync_lab, committing_session)
    sample_id = desk.row("order", order_id)["data"]["tests"][0]["sample_id"]
    payment_id = str(new_id())
    pay = desk.op(
        "payment",
        payment_id,
        "append",
        {"order_id": order_id, "amount": "450.00", "method": "upi", "reference": "UPI-77"},
    )
    collect = desk.op("sample", sample_id, "transition", {"to": "collected"})
    again = desk.op("sample", sample_id, "transition", {"to": "collected"})
    skip = desk.op("sample", sample_id, "transition", {"to": "received"})
    answer = await desk.sync(pay, collect, again, skip)
    assert [r["status"] for r in answer["results"]] == ["APPLIED", "APPLIED", "APPLIED", "REJECTED"]
    assert answer["results"][2]["reason"] == "already collected"
    assert "role" in answer["results"][3]["reason"]
    assert desk.row("payment", payment_id)["data"]["amount"] == "450.00"
    assert desk.row("sample", sample_id)["data"]["status"] == "collected"
    # The same payment id again is a duplicate, never a second payment.
    repeat = await desk.sync(desk.op("payment", payment_id, "append", pay["data"]))
    assert repeat["results"][0]["status"] == "DUPLICATE"


async def test_a_verified_result_is_never_changed_by_sync(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session
) -> None:
    desk = Device(live_client, sync_lab.desk1)
    tech = Device(live_client, sync_lab.technician)
    _, order_id = await placed_order(desk, sync_lab, committing_session)
    test = desk.row("order", order_id)["data"]["tests"][0]
    await desk.sync(desk.op("sample", test["sample_id"], "transition", {"to": "collected"}))
    received = await tech.sync(
        tech.op(
            "sample",
            test["sample_id"],
            "transition",
            {"to": "received", "branch_id": str(sync_lab.lab.id)},
        )
    )
    assert received["results"][0]["status"] == "APPLIED", received
    result_id = str(new_id())
    entered = await tech.sync(
        tech.op("result", result_id, "append", {"order_test_id": test["id"], "value": "95"})
    )
    assert entered["results"][0]["status"] == "APPLIED", entered
    verified = await live_client.post(
        f"/api/v1/results/{result_id}/verify", headers=sync_lab.pathologist, json={}
    )
    assert verified.status_code == 200, verified.text
    await tech.sync()
    base = tech.row("result", result_id)["seq"]
    edit = await tech.sync(
        tech.op("result", result_id, "update", {"value": "59"}, baseVersion=base)
    )
    assert edit["results"][0]["status"] == "REJECTED"
    assert "verified results are never changed" in edit["results"][0]["reason"]
    again = await tech.sync(
        tech.op("result", str(new_id()), "append", {"order_test_id": test["id"], "value": "59"})
    )
    assert again["results"][0]["status"] == "REJECTED"
    await tech.sync()
    assert tech.row("result", result_id)["data"]["value"] == "95"
    assert tech.row("result", result_id)["data"]["status"] == "verified"
