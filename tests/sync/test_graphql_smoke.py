from __future__ import annotations

from nidaan.kit.ids import new_id
from nidaan.sync.hlc import Clock
from tests.sync.conftest import SYNC, SyncLab, gql


def op(clock: Clock, seq: int, entity: str, entity_id: str, operation: str, data: dict, **kw):  # type: ignore[no-untyped-def]
    return {
        "opId": str(new_id()),
        "clientSeq": seq,
        "entity": entity,
        "entityId": entity_id,
        "operation": operation,
        "data": data,
        "hlc": str(clock.tick()),
        **kw,
    }


async def test_register_offline_then_pull(live_client, sync_lab: SyncLab) -> None:  # type: ignore[no-untyped-def]
    device = str(new_id())
    clock = Clock(device)
    patient_id = str(new_id())
    create = op(
        clock,
        1,
        "patient",
        patient_id,
        "create",
        {
            "full_name": "Asha Verma",
            "sex": "female",
            "age_years": 34,
            "registered_at_branch_id": str(sync_lab.cc1.id),
        },
    )
    body = await gql(live_client, sync_lab.desk1, SYNC, clientId=device, ops=[create])
    assert "errors" not in body, body
    result = body["data"]["syncPendingOperations"]
    assert result["results"][0]["status"] == "APPLIED", result
    pulled = {c["entityId"]: c for c in result["changes"]}
    assert pulled[patient_id]["data"]["full_name"] == "Asha Verma"
    again = await gql(live_client, sync_lab.desk1, SYNC, clientId=device, ops=[create])
    assert again["data"]["syncPendingOperations"]["results"][0]["status"] == "APPLIED"
    idle = await gql(
        live_client,
        sync_lab.desk1,
        SYNC,
        clientId=device,
        cursor=result["cursor"],
    )
    assert idle["data"]["syncPendingOperations"]["changes"] == []


async def test_graphql_needs_a_token_and_publishes_its_schema(live_client) -> None:  # type: ignore[no-untyped-def]
    anonymous = await live_client.post("/graphql", json={"query": "{ conflicts { id } }"})
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    sdl = await live_client.get("/graphql/schema.graphql")
    assert sdl.status_code == 200
    assert "syncPendingOperations(" in sdl.text
    assert "resolveConflict(" in sdl.text
