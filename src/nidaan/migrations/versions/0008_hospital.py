"""Hospital systems: hospital patient identifiers and hospital orders (placer numbers).

Revision ID: 0008_hospital
Revises: 0007_integration
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_hospital"
down_revision: str | None = "0007_integration"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _common() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def _fk(
    table: str, column: str, target: str, ondelete: str | None = None
) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "external_patient_ids",
        sa.Column("instrument_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("assigning_authority", sa.String(length=64), nullable=True),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        *_common(),
        _fk("external_patient_ids", "instrument_id", "instruments", "RESTRICT"),
        _fk("external_patient_ids", "organisation_id", "organisations", "RESTRICT"),
        _fk("external_patient_ids", "patient_id", "patients"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_patient_ids")),
        sa.UniqueConstraint(
            "instrument_id",
            "external_id",
            name=op.f("uq_external_patient_ids_instrument_id_external_id"),
        ),
    )
    for column in ("organisation_id", "patient_id"):
        op.create_index(op.f(f"ix_external_patient_ids_{column}"), "external_patient_ids", [column])
    op.create_table(
        "hospital_orders",
        sa.Column("instrument_id", sa.Uuid(), nullable=False),
        sa.Column("placer_number", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        *_common(),
        _fk("hospital_orders", "instrument_id", "instruments", "RESTRICT"),
        _fk("hospital_orders", "organisation_id", "organisations", "RESTRICT"),
        _fk("hospital_orders", "order_id", "orders"),
        _fk("hospital_orders", "message_id", "interface_messages"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hospital_orders")),
        sa.UniqueConstraint(
            "instrument_id",
            "placer_number",
            name=op.f("uq_hospital_orders_instrument_id_placer_number"),
        ),
    )
    for column in ("organisation_id", "order_id"):
        op.create_index(op.f(f"ix_hospital_orders_{column}"), "hospital_orders", [column])


def downgrade() -> None:
    op.drop_table("hospital_orders")
    op.drop_table("external_patient_ids")
