"""Audit entries are inserted in the business transaction and chained right after commit.

Chaining inside the business transaction held the tenant's chain-head lock until COMMIT,
so every audited request of a lab queued behind every other (and behind each other's
event-loop turns). Entries now arrive unchained (seq, prev_hash, hash empty); a chainer
fills those three columns once, in order, under the head lock. The trigger allows exactly
that one change and nothing else.

Revision ID: 0006_audit_chain
Revises: 0005_sequences
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_audit_chain"
down_revision: str | None = "0005_sequences"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTENT_COLUMNS = (
    "id",
    "organisation_id",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "entity_type",
    "entity_id",
    "changes",
    "request_id",
)

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The one permitted change: chaining an unchained entry, its content untouched.
    IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL
       AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL
       AND ROW(__NEW__) IS NOT DISTINCT FROM ROW(__OLD__) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit entries can only be inserted; record a new entry to correct one.';
END;
$$;
""".replace("__NEW__", ", ".join(f"NEW.{c}" for c in CONTENT_COLUMNS)).replace(
    "__OLD__", ", ".join(f"OLD.{c}" for c in CONTENT_COLUMNS)
)

ORIGINAL_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit entries can only be inserted; record a new entry to correct one.';
END;
$$;
"""


def upgrade() -> None:
    for column in ("seq", "prev_hash", "hash"):
        op.alter_column("audit_log", column, nullable=True)
    op.create_index(
        "ix_audit_log_unchained",
        "audit_log",
        ["organisation_id", "id"],
        postgresql_where=sa.text("hash IS NULL"),
    )
    op.execute(APPEND_ONLY_FUNCTION)


def downgrade() -> None:
    op.execute(ORIGINAL_FUNCTION)
    op.drop_index("ix_audit_log_unchained", table_name="audit_log")
    for column in ("seq", "prev_hash", "hash"):
        op.alter_column("audit_log", column, nullable=False)
