"""What an NABL assessor wants on a report: signatory registration and signature, report
status and changes, referral labs, where a sample was received and its condition.

Revision ID: 0012_report_nabl
Revises: 0009_sync
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_report_nabl"
down_revision: str | None = "0011_sync_fixes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("registration_number", sa.String(length=80), nullable=True))
    op.add_column("users", sa.Column("signature_key", sa.String(length=300), nullable=True))
    op.add_column("samples", sa.Column("received_at_branch_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_samples_received_at_branch_id_branches"),
        "samples",
        "branches",
        ["received_at_branch_id"],
        ["id"],
    )
    op.add_column(
        "samples", sa.Column("receipt_condition", sa.ARRAY(sa.String(length=32)), nullable=True)
    )
    op.add_column("samples", sa.Column("receipt_remarks", sa.String(length=500), nullable=True))
    op.add_column("catalog_tests", sa.Column("referral_lab", sa.String(length=200), nullable=True))
    op.add_column(
        "reports",
        sa.Column("status", sa.String(length=16), server_default="final", nullable=False),
    )
    # Reports issued before this migration: a later version was an amendment.
    op.execute("UPDATE reports SET status = 'amended' WHERE amended")
    op.add_column("reports", sa.Column("changes", sa.Text(), nullable=True))
    op.add_column("reports", sa.Column("result_ids", sa.ARRAY(sa.Uuid()), nullable=True))


def downgrade() -> None:
    op.drop_column("reports", "result_ids")
    op.drop_column("reports", "changes")
    op.drop_column("reports", "status")
    op.drop_column("catalog_tests", "referral_lab")
    op.drop_column("samples", "receipt_remarks")
    op.drop_column("samples", "receipt_condition")
    op.drop_constraint(
        op.f("fk_samples_received_at_branch_id_branches"), "samples", type_="foreignkey"
    )
    op.drop_column("samples", "received_at_branch_id")
    op.drop_column("users", "signature_key")
    op.drop_column("users", "registration_number")
