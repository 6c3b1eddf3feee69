"""Finding 6: a GraphQL document that asks too much is refused before any resolver runs.

The probe's 2,000-alias query from a billing user held the event loop for seconds; now it
and its cousins (deep nesting, fragment fan-out, many fields, many operations) are answered
with a GraphQL error and nothing executes. (The event-loop effect is measured in
``benchmarks/graphql_abuse.py``, not asserted here.)
"""

from __future__ import annotations

import httpx
import pytest
from graphql import parse
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.kit.graphql_limits import ROOT_FIELD_COST, GraphQLLimits, document_cost
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user

LIMITS = GraphQLLimits()


@pytest.fixture
async def billing(session: AsyncSession, organisation: Organisation) -> dict[str, str]:
    return bearer_for(await create_user(session, organisation, roles=("billing",)))


class StatementCounter:
    def __init__(self, session: AsyncSession) -> None:
        self.count = 0
        self._engine = session.bind.sync_engine  # type: ignore[union-attr]

    def __enter__(self) -> StatementCounter:
        event.listen(self._engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._count)

    def _count(self, *args: object) -> None:
        self.count += 1


async def _post(client: httpx.AsyncClient, headers: dict[str, str], query: str) -> dict:
    response = await client.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code in (200, 400), response.text
    return response.json()


ABUSIVE = {
    "2000 aliases": "{ " + " ".join(f"a{i}: getSyncStatus {{ lag }}" for i in range(2000)) + " }",
    "100 aliases": "{ " + " ".join(f"a{i}: conflicts {{ id }}" for i in range(100)) + " }",
    "fragment fan-out": "fragment F on SyncStatus { lag headSeq pulledSeq epoch } "
    + "{ "
    + " ".join(f"s{i}: getSyncStatus {{ {'...F ' * 30} }}" for i in range(8))
    + " }",
    "many operations": "{ "
    + " ".join(f"s{i}: getSyncStatus {{ lag headSeq }}" for i in range(9))
    + " ".join(f" c{i}: conflicts {{ id }}" for i in range(9))
    + " a: getSyncStatus { lag } b: conflicts { id } getSyncStatus { lag } }",
    "thousands of tokens": '{ conflicts(entity: "'
    + "x" * 10
    + '") { '
    + " ".join(["id"] * 6000)
    + " } }",
}


@pytest.mark.parametrize("name", sorted(ABUSIVE))
async def test_abusive_documents_are_refused_before_execution(
    client: httpx.AsyncClient,
    session: AsyncSession,
    billing: dict[str, str],
    name: str,
) -> None:
    # Warm up: authentication and the request's own statements.
    await _post(client, billing, "{ getSyncStatus { lag } }")
    with StatementCounter(session) as baseline:
        await _post(client, billing, "{ __typename }")
    with StatementCounter(session) as counter:
        body = await _post(client, billing, ABUSIVE[name])
    assert body.get("data") is None, name
    assert body["errors"], name
    # Only what authenticating the request costs: no resolver touched the database.
    assert counter.count <= baseline.count, (name, counter.count, baseline.count)


async def test_the_sync_clients_own_queries_stay_well_inside_the_limits(
    client: httpx.AsyncClient, billing: dict[str, str]
) -> None:
    from tests.sync.conftest import SYNC

    body = await _post(client, billing, "{ getSyncStatus { lag headSeq } conflicts { id } }")
    assert "errors" not in body, body
    fields, cost = document_cost(parse(SYNC).definitions[0], {})  # type: ignore[arg-type]
    assert fields * 3 < LIMITS.max_fields
    assert cost * 3 < LIMITS.max_cost


@given(
    roots=st.integers(min_value=1, max_value=60),
    leaves=st.integers(min_value=1, max_value=30),
    spreads=st.integers(min_value=0, max_value=5),
)
def test_cost_counts_every_field_with_fragments_expanded(
    roots: int, leaves: int, spreads: int
) -> None:
    fragment = "fragment F on T { " + " ".join(f"f{i}" for i in range(leaves)) + " }"
    body = " ".join(f"r{i}: root {{ {'...F ' * spreads}x }}" for i in range(roots))
    document = parse(f"{fragment} query {{ {body} }}")
    fragments = {document.definitions[0].name.value: document.definitions[0]}  # type: ignore[attr-defined]
    fields, cost = document_cost(document.definitions[1], fragments)  # type: ignore[arg-type]
    assert fields == roots * (1 + 1 + spreads * leaves)
    assert cost == roots * (ROOT_FIELD_COST + 1 + spreads * leaves)
