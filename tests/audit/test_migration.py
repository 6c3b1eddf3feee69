"""The 0002_audit migration and the audit models describe exactly the same schema."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan import migrate
from nidaan.audit import models as audit_models
from nidaan.config import Settings

AUDIT_TABLES = {audit_models.AuditLog.__tablename__, audit_models.AuditChainHead.__tablename__}


def test_models_match_migration(settings: Settings) -> None:
    differences = [
        d for d in migrate.schema_differences(settings) if any(t in repr(d) for t in AUDIT_TABLES)
    ]
    assert differences == []


async def test_append_only_triggers_are_installed(session: AsyncSession) -> None:
    rows = await session.execute(
        text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass "
            "AND NOT tgisinternal ORDER BY tgname"
        )
    )
    assert [r.tgname for r in rows] == ["audit_log_no_truncate", "audit_log_no_update_delete"]
