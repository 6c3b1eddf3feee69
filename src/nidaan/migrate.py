"""Schema migrations: upgrade to head, report current/head revisions, compare models to schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from nidaan.config import Settings
from nidaan.kit.db import sync_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Apply every pending migration."""
    engine = sync_engine(settings)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(settings: Settings) -> str | None:
    engine = sync_engine(settings)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def schema_differences(settings: Settings) -> list[object]:
    """Differences between the models and the live schema (empty when they agree)."""
    from nidaan.models import metadata

    engine = sync_engine(settings)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    # procrastinate's tables are created from its own SQL and are not our models.
    return [d for d in diffs if "procrastinate" not in repr(d)]
