"""Statement budgets of the edge hot paths, counted through the real HTTP app (issue 19).

Counts, never times: every SQL statement any engine of this process sends (the request's
transaction, the autonomous pool that draws readable numbers, COMMIT) is counted with a
``before_cursor_execute`` listener while one request runs on real, committing sessions,
after a warm-up request of the same kind. Run with ``-s`` to see the table and the
statements.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from nidaan.config import Settings
from tests.sync.conftest import SyncLab, _build_lab

pytestmark = pytest.mark.asyncio

#: One sync call pushing 10 ops (5 registrations + 5 edits), then pulling. Issue 19's budget
#: is for the push: from authentication to the push's COMMIT (the device row, the stored
#: answers, one read-ahead, the set-based writes of patients, audit entries and field history,
#: the ops' answers with the device's position, change capture with the COMMIT). 38 before
#: the set-based writes, 88 before the read-ahead (push and pull were counted together then).
SYNC_PUSH_10_BUDGET = 15
#: The pull after that COMMIT: the tenant's head, the changes, their rows, the device's cursor.
SYNC_PULL_BUDGET = 5
#: A registration: authentication, insert, duplicate lookup, and one statement at commit for
#: the audit entry and change capture (``nidaan.kit.bundle``); one more when the MRN block is
#: drawn, one when the branch is not known yet.
REGISTRATION_BUDGET = 5

#: Audit entries are chained after commit by the server's background chainer, one batch for
#: many requests (``nidaan.audit.service``): not work of the request, so not counted.
CHAINER_TASK = "nidaan-audit-chainer"

#: A name search: authentication, and the page with its total in one statement.
SEARCH_BUDGET = 2

_TABLE: dict[str, int] = {}


class Statements:
    """SQL statements sent by any engine while the block runs."""

    def __init__(self) -> None:
        self.sql: list[str] = []
        #: How many statements had been sent when the first transaction committed.
        self.first_commit: int | None = None

    def _committed(self, conn: Any) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_name() == CHAINER_TASK:
            return
        if self.first_commit is None:
            self.first_commit = len(self.sql)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_name() == CHAINER_TASK:
            return  # the audit chainer's batch, in the background after commits (see below)
        self.sql.append(" ".join(statement.split())[:160])

    @property
    def count(self) -> int:
        return len(self.sql)


@contextmanager
def counting() -> Iterator[Statements]:
    seen = Statements()
    event.listen(Engine, "before_cursor_execute", seen._seen)
    event.listen(Engine, "commit", seen._committed)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", seen._seen)
        event.remove(Engine, "commit", seen._committed)


def _report(name: str, seen: Statements, part: slice = slice(None)) -> None:
    sql_sent = seen.sql[part]
    _TABLE[name] = len(sql_sent)
    print(f"\n{name}: {len(sql_sent)} statements")
    for number, sql in enumerate(sql_sent, 1):
        print(f"  {number:2d}. {sql}")
    print("\nendpoint                          statements")
    for endpoint, count in _TABLE.items():
        print(f"  {endpoint:32s}{count:>6d}")


@pytest.fixture
async def live_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on committing sessions, with the audit chainer running as in a server."""
    from nidaan.audit.service import chainer
    from nidaan.main import create_app

    app = create_app(settings, run_worker=False, run_interfaces=False)
    transport = httpx.ASGITransport(app=app)
    chainer.start()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await chainer.stop()


@pytest.fixture
async def lab(committing_session: Any) -> SyncLab:
    async with committing_session() as session:
        return await _build_lab(session)


def _patient(index: int, branch: Any) -> dict[str, Any]:
    return {
        "full_name": f"Budget Patient {uuid.uuid4().hex[:8]} {index}",
        "sex": "female",
        "age_years": 30 + index,
        "mobile": f"98{uuid.uuid4().int % 10**8:08d}",
        "registered_at_branch_id": str(branch.id),
    }


async def test_patient_registration_statements(live_client: Any, lab: SyncLab) -> None:
    async def register(index: int) -> httpx.Response:
        response = await live_client.post(
            "/api/v1/patients", json=_patient(index, lab.cc1), headers=lab.desk1
        )
        assert response.status_code == 201, response.text
        return response

    await register(0)  # warm-up: caches, prepared statements, the MRN counter row
    with counting() as seen:
        await register(1)
    _report("POST /api/v1/patients", seen)
    assert seen.count <= REGISTRATION_BUDGET


async def test_patient_search_statements(live_client: Any, lab: SyncLab) -> None:
    await live_client.post("/api/v1/patients", json=_patient(0, lab.cc1), headers=lab.desk1)
    for _ in range(2):  # the second is counted
        with counting() as seen:
            response = await live_client.get(
                "/api/v1/patients", params={"q": "Budget", "limit": 20}, headers=lab.desk1
            )
        assert response.status_code == 200, response.text
        assert response.json()["items"]
    _report("GET /api/v1/patients?q=", seen)
    assert seen.count <= SEARCH_BUDGET


async def test_sync_push_of_ten_ops_statements(live_client: Any, lab: SyncLab) -> None:
    from tests.sync.conftest import Device

    device = Device(live_client, lab.desk1, lab.cc1.id)
    await device.sync()  # bind the device
    warm = [uuid.uuid4() for _ in range(5)]
    await device.sync(
        *(device.op("patient", p, "create", _patient(i, lab.cc1)) for i, p in enumerate(warm))
    )
    made = [uuid.uuid4() for _ in range(5)]
    ops = [device.op("patient", p, "create", _patient(i, lab.cc1)) for i, p in enumerate(made)]
    ops += [device.op("patient", p, "update", {"city": "Nashik"}) for p in warm]
    with counting() as seen:
        result = await device.sync(*ops)
    assert [r["status"] for r in result["results"]] == ["APPLIED"] * 10
    assert seen.first_commit is not None  # the push commits before the pull
    pushed, pulled = slice(0, seen.first_commit), slice(seen.first_commit, None)
    _report("sync push of 10 ops", seen, pushed)
    _report("  its pull", seen, pulled)
    assert len(seen.sql[pushed]) <= SYNC_PUSH_10_BUDGET
    assert len(seen.sql[pulled]) <= SYNC_PULL_BUDGET
