"""Counters lose their tenant foreign key: numbers are drawn outside the caller's transaction.

Revision ID: 0005_sequences
Revises: 0004_lab
Create Date: 2026-11-26 07:37:39.169408
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_sequences"
down_revision: str | None = "0004_lab"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(
        op.f("fk_sequences_organisation_id_organisations"), "sequences", type_="foreignkey"
    )


def downgrade() -> None:
    op.create_foreign_key(
        op.f("fk_sequences_organisation_id_organisations"),
        "sequences",
        "organisations",
        ["organisation_id"],
        ["id"],
        ondelete="RESTRICT",
    )
