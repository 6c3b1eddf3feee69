"""DPDP jobs: the nightly retention run and the escalation of unanswered requests."""

from __future__ import annotations

import structlog
from sqlalchemy import select

from nidaan.compliance.service import compliance_service
from nidaan.config import get_settings
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic
from nidaan.tenancy.models import Organisation

log = structlog.get_logger("nidaan.compliance")


@periodic(cron="30 2 * * *", periodic_id="compliance.retention")
@actor("compliance.retention", retry=0)
async def retention(timestamp: int) -> None:
    """Purge what is past its retention period (legal holds kept), one organisation per
    transaction; the run is audited per organisation."""
    settings = get_settings()
    async with session_scope(settings) as session:
        organisations = list(await session.scalars(select(Organisation.id)))
    for organisation_id in organisations:
        async with session_scope(settings) as session:
            report = await compliance_service.run_retention(session, organisation_id, dry_run=False)
        purged = {r["record_class"]: r["purged"] for r in report if r["purged"]}
        if purged:
            log.info("retention_purged", organisation_id=str(organisation_id), **purged)


@periodic(cron="15 * * * *", periodic_id="compliance.escalate")
@actor("compliance.escalate", retry=0)
async def escalate(timestamp: int) -> None:
    """Escalate rights requests and grievances unanswered for 60 of their 90 days."""
    async with session_scope(get_settings()) as session:
        escalated = await compliance_service.escalate_overdue(session)
    if escalated:
        log.warning("dpdp_requests_escalated", count=escalated)
