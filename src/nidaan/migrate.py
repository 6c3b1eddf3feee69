"""Schema migrations: upgrade to head, report current/head revisions, compare models to schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, make_url, text

from nidaan.config import Settings
from nidaan.kit.db import database_url, sync_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


#: Tables the application role may read and append to but not change or empty. The audit
#: log's chain columns are filled once after commit (its trigger allows only that).
RESTRICTED_GRANTS: dict[str, list[str]] = {
    "alembic_version": ["SELECT"],
    "audit_log": ["SELECT", "INSERT", "UPDATE (seq, prev_hash, hash, prev_id)"],
    "audit_chain_heads": ["SELECT", "INSERT", "UPDATE"],
}


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Apply every pending migration as the schema owner, then give the application role
    (when it is another role) exactly the privileges it needs."""
    engine = sync_engine(settings, owner=True)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            app_role = make_url(database_url(settings)).username
            if app_role and app_role != connection.execute(text("SELECT current_user")).scalar():
                grant_application_role(connection, app_role)
    finally:
        engine.dispose()


def grant_application_role(connection: Connection, role: str) -> None:
    """Data privileges on every table for ``role``: read and write rows, never alter,
    truncate or own anything; append-only tables as in ``RESTRICTED_GRANTS``. Idempotent,
    so it runs after every upgrade (new tables are covered)."""
    exists = connection.execute(
        text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).scalar()
    if not exists:
        raise RuntimeError(
            f"The application's database role {role!r} (from NIDAAN_DATABASE_URL) does not "
            "exist; create it first (see docs/security.md, 'Database roles')."
        )
    grantee = _quoted(connection, role)
    for statement in (
        f"GRANT USAGE ON SCHEMA public TO {grantee}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {grantee}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {grantee}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {grantee}",
    ):
        connection.execute(text(statement))
    for table, privileges in RESTRICTED_GRANTS.items():
        name = _quoted(connection, table)
        connection.execute(text(f"REVOKE ALL ON {name} FROM {grantee}"))
        for privilege in privileges:
            connection.execute(text(f"GRANT {privilege} ON {name} TO {grantee}"))


def _quoted(connection: Connection, identifier: str) -> str:
    return str(connection.execute(text("SELECT quote_ident(:i)"), {"i": identifier}).scalar())


def database_role_problems(settings: Settings) -> list[str]:
    """Why the application's database role could rewrite history (empty when it cannot):
    a superuser, or the owner of the audit log, can switch its triggers off."""
    engine = sync_engine(settings)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT r.rolsuper, pg_has_role(current_user, c.relowner, 'USAGE') "
                    "FROM pg_roles r, pg_class c "
                    "WHERE r.rolname = current_user AND c.oid = 'audit_log'::regclass"
                )
            ).one()
    finally:
        engine.dispose()
    superuser, owner = row
    problems = []
    if superuser:
        problems.append("the application connects to PostgreSQL as a superuser")
    elif owner:
        problems.append("the application's database role owns the audit log")
    return problems


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(settings: Settings) -> str | None:
    engine = sync_engine(settings, owner=True)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def schema_differences(settings: Settings) -> list[object]:
    """Differences between the models and the live schema (empty when they agree)."""
    from nidaan.models import metadata

    engine = sync_engine(settings, owner=True)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    # procrastinate's tables are created from its own SQL and are not our models.
    return [d for d in diffs if "procrastinate" not in repr(d)]
