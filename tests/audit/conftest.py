"""Audit fixtures: a committed organisation that is wiped (audit rows included) afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit import models as audit_models  # noqa: F401  (registers the tables)
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import create_organisation

CommittingSession = Callable[[], AbstractAsyncContextManager[AsyncSession]]


async def superuser_execute(conninfo: str, *statements: str, params: tuple = ()) -> None:
    """Run statements as superuser with triggers off (the way an attacker with DB access would)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SET session_replication_role = replica")
        for statement in statements:
            await conn.execute(statement, params)  # type: ignore[arg-type]


@pytest.fixture
async def committed_organisation(
    committing_session: CommittingSession, superuser_conninfo: str
) -> AsyncIterator[Organisation]:
    """A fresh organisation in its own committed transaction, removed with its audit trail.

    Tests that commit (and tamper with) audit data use it, so later tests that verify all
    organisations still see intact chains.
    """
    async with committing_session() as session:
        organisation = await create_organisation(session)
    yield organisation
    org_id = str(organisation.id)
    await superuser_execute(
        superuser_conninfo,
        "DELETE FROM audit_log WHERE organisation_id = %s",
        "DELETE FROM audit_chain_heads WHERE organisation_id = %s",
        "DELETE FROM organisations WHERE id = %s",
        params=(org_id,),
    )
