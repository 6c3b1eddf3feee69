"""The reference client against the real server and PostgreSQL (committed data, fresh org).

The app runs without the test-transaction override: ``syncPendingOperations`` commits its push
before it pulls, so these tests use a fresh organisation made with real commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from nidaan.config import Settings
from nidaan.sync.client.engine import SyncClient
from nidaan.sync.client.errors import NetworkError
from nidaan.sync.client.store import LocalStore
from nidaan.sync.client.transport import Transport
from tests.fixtures.objects import TEST_PASSWORD, create_branch, create_organisation, create_user

pytestmark = pytest.mark.skipif(
    not (Path(__file__).parents[3] / "src/nidaan/sync/graphql.py").exists(),
    reason="the sync server is not there yet",
)


@dataclass
class Centre:
    organisation_id: str
    cc1: str
    desk_email: str
    admin_email: str


@pytest.fixture
async def live_app(settings: Settings):  # type: ignore[no-untyped-def]
    from nidaan.main import create_app

    return create_app(settings)


@pytest.fixture
async def http(live_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=live_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def centre(committing_session: Any) -> Centre:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        cc1 = await create_branch(session, organisation)
        desk = await create_user(session, organisation, roles=("front_desk",), branches=[cc1])
        admin = await create_user(session, organisation, roles=("admin",))
        return Centre(str(organisation.id), str(cc1.id), desk.email, admin.email)


def _client(http: httpx.AsyncClient, path: Path, email: str, branch: str) -> SyncClient:
    transport = Transport("", email=email, password=TEST_PASSWORD, http=http)
    return SyncClient(LocalStore(path), transport, branch_id=branch)


async def _register(http: httpx.AsyncClient, email: str, branch: str, **fields: Any) -> str:
    token = await http.post(
        "/api/v1/auth/token", data={"username": email, "password": TEST_PASSWORD}
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    body = {"full_name": "Asha Verma", "sex": "female", "age_years": 45, **fields}
    response = await http.post(
        "/api/v1/patients", json={**body, "registered_at_branch_id": branch}, headers=headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["patient"]["id"])


async def test_pull_edit_push_and_a_second_device_sees_it(
    http: httpx.AsyncClient, centre: Centre, tmp_path: Path
) -> None:
    patient_id = await _register(http, centre.desk_email, centre.cc1, city="Pune")
    a = _client(http, tmp_path / "a.sqlite", centre.desk_email, centre.cc1)
    b = _client(http, tmp_path / "b.sqlite", centre.desk_email, centre.cc1)

    await a.sync()
    assert a.get("patient", patient_id).data["city"] == "Pune"
    a.update("patient", patient_id, {"city": "Agra"})
    report = await a.sync()
    assert report.applied == 1, report.results
    assert a.pending() == []

    await b.sync()
    assert b.get("patient", patient_id).data["city"] == "Agra"


async def test_offline_registration_reaches_the_server_once(
    http: httpx.AsyncClient, centre: Centre, tmp_path: Path
) -> None:
    class DropFirstAnswer(Transport):
        dropped = False

        async def send(self, request: httpx.Request) -> httpx.Response:
            response = await super().send(request)
            if request.url.path == "/graphql" and not self.dropped:
                self.dropped = True  # the server committed; the centre never hears back
                raise NetworkError("line dropped after commit")
            return response

    transport = DropFirstAnswer("", email=centre.desk_email, password=TEST_PASSWORD, http=http)
    client = SyncClient(LocalStore(tmp_path / "c.sqlite"), transport, branch_id=centre.cc1)
    patient_id = client.create(
        "patient",
        {"full_name": "Ravi Kumar", "sex": "male", "age_years": 30,
         "registered_at_branch_id": centre.cc1},
    )  # fmt: skip
    with pytest.raises(NetworkError):
        await client.sync()
    report = await client.sync()

    assert report.applied + report.duplicates == 1, report.results
    assert client.pending() == []
    synced = client.store.synced("patient", patient_id)
    assert synced is not None
    assert synced.data["full_name"] == "Ravi Kumar"
    names = [row.data["full_name"] for row in client.rows("patient")]
    assert names.count("Ravi Kumar") == 1


async def test_a_guarded_field_edited_twice_opens_one_conflict(
    http: httpx.AsyncClient, centre: Centre, tmp_path: Path
) -> None:
    patient_id = await _register(http, centre.desk_email, centre.cc1)
    a = _client(http, tmp_path / "a.sqlite", centre.desk_email, centre.cc1)
    b = _client(http, tmp_path / "b.sqlite", centre.desk_email, centre.cc1)
    await a.sync()
    await b.sync()

    a.update("patient", patient_id, {"pregnant": True})
    b.update("patient", patient_id, {"pregnant": False})
    first = await a.sync()
    second = await b.sync()

    assert first.applied == 1, first.results
    assert second.conflicts == 1, second.results
    assert len(b.conflicts()) == 1
    assert b.get("patient", patient_id).data["pregnant"] is True  # the server's value stands
    await a.sync()
    assert len(a.conflicts()) == 1  # conflicts are pulled like any synced entity
    status = await b.server_status()
    assert status["lastClientSeq"] == 1


async def test_after_an_epoch_bump_the_client_resets_and_keeps_its_changes(
    http: httpx.AsyncClient, centre: Centre, committing_session: Any, tmp_path: Path
) -> None:
    import uuid

    from nidaan.sync.service import sync_service

    patient_id = await _register(http, centre.desk_email, centre.cc1, city="Pune")
    client = _client(http, tmp_path / "a.sqlite", centre.desk_email, centre.cc1)
    await client.sync()
    old_cursor = client.cursor
    client.update("patient", patient_id, {"city": "Agra"})
    async with committing_session() as session:  # the lab restored a backup
        await sync_service.bump_epoch(session, uuid.UUID(centre.organisation_id))

    report = await client.sync()

    assert report.resets == 1
    assert report.applied == 1, report.results
    assert client.pending() == []
    assert client.cursor != old_cursor
    assert client.get("patient", patient_id).data["city"] == "Agra"
