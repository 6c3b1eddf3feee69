"""Security hardening and DPDP: token versions, audit chain pointers, compliance tables.

Revision ID: 0017_security_dpdp
Revises: 0009_sync
Create Date: 2026-12-07 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_security_dpdp"
down_revision: str | None = "0015_abdm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Access tokens carry the user's token version; bumping it ends every session at once.
    op.add_column(
        "users", sa.Column("token_version", sa.Integer(), server_default="0", nullable=False)
    )
    # Each audit entry names the entry chained before it, and each chain head its last
    # entry: an entry found unchained after it was chained is reported, never chained anew.
    op.add_column("audit_log", sa.Column("prev_id", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_audit_log_prev_id",
        "audit_log",
        ["organisation_id", "prev_id"],
        postgresql_where=sa.text("prev_id IS NOT NULL"),
    )
    op.add_column("audit_chain_heads", sa.Column("last_entry_id", sa.Uuid(), nullable=True))
    # Failed logins name the account tried (when it exists), so lock-outs reach its admins.
    op.add_column("login_failures", sa.Column("user_id", sa.Uuid(), nullable=True))
    op.create_index(op.f("ix_login_failures_user_id"), "login_failures", ["user_id"])
    op.create_foreign_key(
        op.f("fk_login_failures_user_id_users"),
        "login_failures",
        "users",
        ["user_id"],
        ["id"],
        ondelete="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_login_failures_user_id_users"), "login_failures")
    op.drop_index(op.f("ix_login_failures_user_id"), table_name="login_failures")
    op.drop_column("login_failures", "user_id")
    op.drop_column("audit_chain_heads", "last_entry_id")
    op.drop_index("ix_audit_log_prev_id", table_name="audit_log")
    op.drop_column("audit_log", "prev_id")
    op.drop_column("users", "token_version")
