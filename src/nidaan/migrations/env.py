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
        engine = sync_engine(get_settings(), owner=True)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Encrypted columns are plain text in the database; render them so."""
    from nidaan.kit.encrypted_type import EncryptedString

    if type_ == "type" and isinstance(obj, EncryptedString):
        return "sa.Text()"
    return False


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """procrastinate's tables come from its own SQL (migration 0001), not from our models."""
    table = getattr(obj, "table", obj)
    table_name = getattr(table, "name", name) or ""
    return not str(table_name).startswith("procrastinate")


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # Never wait long behind a busy table: fail the deploy and retry instead of stalling traffic.
    connection.execute(text("SET lock_timeout = '10s'"))
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_item=_render_item,
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Offline SQL generation is not supported; run against a database.")
run_migrations_online()
