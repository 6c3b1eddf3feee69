"""Alembic environment: the database comes from Nidaan's settings (embedded or external)."""

from alembic import context
from sqlalchemy import text

from nidaan.config import get_settings
from nidaan.kit.db import sync_engine
from nidaan.models import metadata

config = context.config


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = sync_engine(get_settings())
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # Never wait long behind a busy table: fail the deploy and retry instead of stalling traffic.
    connection.execute(text("SET lock_timeout = '10s'"))
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Offline SQL generation is not supported; run against a database.")
run_migrations_online()
