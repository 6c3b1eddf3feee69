"""Billing debit notes: an extra charge against an issued invoice, with its reason.

Revision ID: 0026_notes
Revises: 0020_appointments
Create Date: 2026-12-07 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026_notes"
down_revision: str | None = "0024_dpdp_rights"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("debit_note_for_id", sa.Uuid(), nullable=True))
    op.add_column("invoices", sa.Column("note_reason", sa.String(length=300), nullable=True))
    op.create_foreign_key(
        op.f("fk_invoices_debit_note_for_id_invoices"),
        "invoices",
        "invoices",
        ["debit_note_for_id"],
        ["id"],
    )
    op.create_index(op.f("ix_invoices_debit_note_for_id"), "invoices", ["debit_note_for_id"])
    op.create_check_constraint(
        op.f("ck_invoices_debit_note_for"),
        "invoices",
        "(kind = 'debit_note') = (debit_note_for_id IS NOT NULL)",
    )


def downgrade() -> None:
    op.execute("DELETE FROM invoices WHERE kind = 'debit_note'")
    op.drop_constraint(op.f("ck_invoices_debit_note_for"), "invoices", type_="check")
    op.drop_index(op.f("ix_invoices_debit_note_for_id"), table_name="invoices")
    op.drop_constraint(
        op.f("fk_invoices_debit_note_for_id_invoices"), "invoices", type_="foreignkey"
    )
    op.drop_column("invoices", "note_reason")
    op.drop_column("invoices", "debit_note_for_id")
