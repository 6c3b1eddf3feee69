"""What the report header prints is the organisation's to set (and the NABL line only when
it has a certificate)."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user


async def test_admin_sets_and_clears_the_report_header(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = bearer_for(await create_user(session, organisation, roles=("admin",)))
    accreditation = "NABL accredited medical laboratory (ISO 15189:2022), certificate MC-5820"
    changed = await client.patch(
        "/api/v1/organisation",
        json={"address": " 12 FC Road, Pune ", "accreditation": accreditation},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["address"], body["accreditation"]) == ("12 FC Road, Pune", accreditation)
    cleared = await client.patch(
        "/api/v1/organisation", json={"accreditation": None, "name": None}, headers=admin
    )
    assert (cleared.json()["accreditation"], cleared.json()["name"]) == (None, organisation.name)
    entries = list(
        await session.scalars(
            select(AuditLog)
            .where(AuditLog.action == "organisation.updated")
            .where(AuditLog.entity_id == str(organisation.id))
            .order_by(AuditLog.id)
        )
    )
    assert [e.changes["after"]["accreditation"] for e in entries] == [accreditation, None]
    shown = await client.get("/api/v1/organisation", headers=admin)
    assert shown.json()["accreditation"] is None
