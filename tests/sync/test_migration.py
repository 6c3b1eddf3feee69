"""The sync migrations (0009, 0011) and the sync models describe exactly the same schema."""

from __future__ import annotations

from nidaan import migrate
from nidaan.config import Settings
from nidaan.sync import models as sync_models

SYNC_TABLES = {
    table.name
    for table in sync_models.SyncTenantState.metadata.tables.values()
    if table.name.startswith("sync_")
}


def test_models_match_migrations(settings: Settings) -> None:
    assert "sync_field_history" in SYNC_TABLES
    differences = [
        d for d in migrate.schema_differences(settings) if any(t in repr(d) for t in SYNC_TABLES)
    ]
    assert differences == []
