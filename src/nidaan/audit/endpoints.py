"""Audit API: list the organisation's entries and verify its chain (admins and auditors)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.checkpoints import verify_anchored
from nidaan.audit.schemas import (
    AuditBrokenLinkOut,
    AuditCheckpointOut,
    AuditEntryOut,
    AuditVerifyOut,
)
from nidaan.audit.service import audit_service
from nidaan.auth.dependencies import require_roles
from nidaan.auth.principal import Principal
from nidaan.config import get_settings
from nidaan.deps import get_session
from nidaan.kit.pagination import MAX_LIMIT, MAX_PAGE, PageParams
from nidaan.kit.schemas import ListResource

router = APIRouter(prefix="/audit", tags=["audit"])

_audit_reader = require_roles("admin", "auditor")


@router.get(
    "/entries",
    response_model=ListResource[AuditEntryOut],
    operation_id="audit:list_entries",
    summary="List audit entries, newest first",
)
async def list_entries(
    entity_type: str | None = Query(None, description="Only entries about this kind of record"),
    entity_id: str | None = Query(None, description="Only entries about this record"),
    action: str | None = Query(None, description='Only this action, e.g. "user.created"'),
    page: int = Query(1, ge=1, le=MAX_PAGE, description="1-based page number"),
    limit: int = Query(20, ge=1, le=MAX_LIMIT, description="Entries per page"),
    principal: Principal = Depends(_audit_reader),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[AuditEntryOut]:
    entries, total = await audit_service.list_entries(
        session,
        principal.organisation_id,
        entity_type=entity_type,
        entity_id=entity_id,
        action=action,
        page=PageParams(page=page, limit=limit),
    )
    items = [AuditEntryOut.model_validate(entry) for entry in entries]
    return ListResource[AuditEntryOut].build(items, total, page, limit)


@router.post(
    "/verify",
    response_model=AuditVerifyOut,
    operation_id="audit:verify",
    summary="Verify the organisation's audit hash chain",
)
async def verify(
    principal: Principal = Depends(_audit_reader),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> AuditVerifyOut:
    report = await verify_anchored(session, get_settings(), principal.organisation_id)
    return AuditVerifyOut(
        ok=report.ok,
        organisations_checked=report.organisations_checked,
        entries_checked=report.entries_checked,
        first_broken=AuditBrokenLinkOut.model_validate(report.first_broken)
        if report.first_broken
        else None,
        checkpoints=[
            AuditCheckpointOut(
                organisation_id=c.organisation_id,
                checkpoints_checked=c.checkpoints_checked,
                entries_checked=c.entries_checked,
                latest_seq=c.latest.seq if c.latest else None,
                latest_head_hash=c.latest.head_hash if c.latest else None,
                latest_created_at=c.latest.created_at if c.latest else None,
                key_id=c.latest.key_id if c.latest else None,
            )
            for c in report.checkpoints
        ],
    )
