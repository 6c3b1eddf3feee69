"""Pre-printed barcode labels bound to samples: a sample's label alias, unique within the
organisation (a label is bound once, anywhere).

Revision ID: 0027_home_more
Revises: 0020_appointments
Create Date: 2026-12-07 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027_home_more"
down_revision: str | None = "0026_notes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("samples", sa.Column("label_alias", sa.String(length=40), nullable=True))
    op.create_index(
        "uq_samples_organisation_label_alias",
        "samples",
        ["organisation_id", "label_alias"],
        unique=True,
        postgresql_where=sa.text("label_alias IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_samples_organisation_label_alias", table_name="samples")
    op.drop_column("samples", "label_alias")
