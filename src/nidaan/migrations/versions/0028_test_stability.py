"""Per-test stability windows: catalog_tests.stability_hours (stricter than the container's
default when set) and samples.test_stability_hours (the strictest window of the tests in a
tube, kept on the tube when its tests are set).

Revision ID: 0028_test_stability
Revises: 0027_home_more
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028_test_stability"
down_revision: str | None = "0027_home_more"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("catalog_tests", sa.Column("stability_hours", sa.Integer(), nullable=True))
    op.add_column("samples", sa.Column("test_stability_hours", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("samples", "test_stability_hours")
    op.drop_column("catalog_tests", "stability_hours")
