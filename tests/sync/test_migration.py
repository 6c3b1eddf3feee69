"""The sync migrations (0009, 0011) and the sync models describe exactly the same schema."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from sqlalchemy import text

from nidaan import migrate
from nidaan.config import Settings
from nidaan.kit.crypto import get_cipher
from nidaan.kit.db import sync_engine
from nidaan.kit.ids import new_id
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


def test_migration_seals_personal_values_kept_in_clear(settings: Settings) -> None:
    """Field history written before 0011 held losing mobile numbers in clear; the migration
    seals them (and leaves other fields alone)."""
    migration = _load("0011_sync_fixes.py")
    engine = sync_engine(settings)
    try:
        with engine.begin() as connection:
            organisation = connection.execute(
                text(
                    "INSERT INTO organisations (id, name, slug) VALUES (:id, 'Old Lab', :slug) "
                    "RETURNING id"
                ),
                {"id": new_id(), "slug": f"old-{new_id().hex[-8:]}"},
            ).scalar_one()
            patient = new_id()
            for field, value in (("mobile", "+919812345678"), ("city", "Pune")):
                connection.execute(
                    text(
                        "INSERT INTO sync_field_history (organisation_id, entity, entity_id, "
                        "field, value, outcome) VALUES (:org, 'patient', :id, :field, "
                        "CAST(:value AS jsonb), 'lost')"
                    ),
                    {"org": organisation, "id": patient, "field": field, "value": f'"{value}"'},
                )
            assert migration.seal_history(connection) >= 1
            rows = {
                r.field: r
                for r in connection.execute(
                    text(
                        "SELECT field, value, value_sealed FROM sync_field_history "
                        "WHERE entity_id = :id"
                    ),
                    {"id": patient},
                )
            }
            assert rows["mobile"].value == "+91******5678"
            assert "9812345678" not in rows["mobile"].value_sealed
            sealed = get_cipher().decrypt(rows["mobile"].value_sealed, "sync_field_history.value")
            assert sealed == '"+919812345678"'
            assert (rows["city"].value, rows["city"].value_sealed) == ("Pune", None)
            connection.rollback()
    finally:
        engine.dispose()


def _load(name: str) -> ModuleType:
    path = Path(migrate.MIGRATIONS_DIR) / "versions" / name
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
