"""Event streaming: each outbox event remembers when the relay published it to the broker.
Analyzer link heartbeats: the interfaces process publishes each link's state, so the API
(in another process) tells the truth about it.

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

    op.create_table(
        "instrument_link_heartbeats",
        sa.Column("instrument_id", sa.Uuid(), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_instrument_link_heartbeats_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_instrument_link_heartbeats_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("instrument_id", name=op.f("pk_instrument_link_heartbeats")),
    )
    op.create_index(
        op.f("ix_instrument_link_heartbeats_organisation_id"),
        "instrument_link_heartbeats",
        ["organisation_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("instrument_link_heartbeats")
    op.drop_index("ix_event_outbox_unrelayed", table_name="event_outbox")
    op.drop_column("event_outbox", "relayed_at")
