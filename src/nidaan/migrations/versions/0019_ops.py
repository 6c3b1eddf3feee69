"""Event streaming: each outbox event remembers when the relay published it to the broker.

Revision ID: 0019_ops
Revises: 0018_qc_autoverify
Create Date: 2026-12-07 16:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_ops"
down_revision: str | None = "0018_qc_autoverify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column(
        "event_outbox", sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True)
    )
    # The relay reads the events not yet published, oldest id first; the index stays small
    # because published rows leave it.
    op.create_index(
        "ix_event_outbox_unrelayed",
        "event_outbox",
        ["id"],
        postgresql_where=sa.text("relayed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_event_outbox_unrelayed", table_name="event_outbox")
    op.drop_column("event_outbox", "relayed_at")
