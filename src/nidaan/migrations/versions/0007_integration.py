"""Analyzer integration: instruments, their test maps, the raw message store, the exceptions queue.

A message is unique per (organisation, instrument, direction, dedupe key) among first copies;
re-sent copies are stored with status "duplicate" and point at the first.

Revision ID: 0007_integration
Revises: 0006_audit_chain
Create Date: 2026-11-26 08:09:21.527509
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_integration"
down_revision: str | None = "0006_audit_chain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instruments",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("driver", sa.String(length=32), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("device", sa.String(length=255), nullable=True),
        sa.Column("baudrate", sa.Integer(), nullable=True),
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "settings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
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
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branches.id"], name=op.f("fk_instruments_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_instruments_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instruments")),
        sa.UniqueConstraint(
            "organisation_id", "name", name=op.f("uq_instruments_organisation_id_name")
        ),
    )
    op.create_index(op.f("ix_instruments_branch_id"), "instruments", ["branch_id"], unique=False)
    op.create_index(
        op.f("ix_instruments_organisation_id"), "instruments", ["organisation_id"], unique=False
    )
    op.create_table(
        "instrument_test_maps",
        sa.Column("instrument_id", sa.Uuid(), nullable=False),
        sa.Column("instrument_code", sa.String(length=64), nullable=False),
        sa.Column("test_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_instrument_test_maps_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_instrument_test_maps_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["catalog_tests.id"],
            name=op.f("fk_instrument_test_maps_test_id_catalog_tests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instrument_test_maps")),
        sa.UniqueConstraint(
            "instrument_id",
            "instrument_code",
            name=op.f("uq_instrument_test_maps_instrument_id_instrument_code"),
        ),
    )
    op.create_index(
        op.f("ix_instrument_test_maps_organisation_id"),
        "instrument_test_maps",
        ["organisation_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_instrument_test_maps_test_id"), "instrument_test_maps", ["test_id"], unique=False
    )
    op.create_table(
        "interface_messages",
        sa.Column("instrument_id", sa.Uuid(), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("message_type", sa.String(length=40), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duplicate_of_id", sa.Uuid(), nullable=True),
        sa.Column(
            "links",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["interface_messages.id"],
            name=op.f("fk_interface_messages_duplicate_of_id_interface_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_interface_messages_instrument_id_instruments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_interface_messages_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interface_messages")),
    )
    op.create_index(
        "ix_interface_messages_instrument_received",
        "interface_messages",
        ["instrument_id", "received_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_interface_messages_organisation_id"),
        "interface_messages",
        ["organisation_id"],
        unique=False,
    )
    op.create_index(
        "uq_interface_messages_dedupe",
        "interface_messages",
        ["organisation_id", "instrument_id", "direction", "dedupe_key"],
        unique=True,
        postgresql_where=sa.text("dedupe_key IS NOT NULL AND status <> 'duplicate'"),
    )
    op.create_table(
        "interface_exceptions",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("instrument_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("accession", sa.String(length=64), nullable=True),
        sa.Column("instrument_code", sa.String(length=64), nullable=True),
        sa.Column("value", sa.String(length=200), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=True),
        sa.Column("flags", sa.String(length=100), nullable=True),
        sa.Column("instrument_status", sa.String(length=8), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw_segment", sa.Text(), nullable=True),
        sa.Column("sample_id", sa.Uuid(), nullable=True),
        sa.Column("test_id", sa.Uuid(), nullable=True),
        sa.Column("order_test_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("resolution_note", sa.String(length=500), nullable=True),
        sa.Column("resolved_by_kind", sa.String(length=16), nullable=True),
        sa.Column("resolved_by_id", sa.Uuid(), nullable=True),
        sa.Column("resolved_by_label", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result_id", sa.Uuid(), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_interface_exceptions_instrument_id_instruments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["interface_messages.id"],
            name=op.f("fk_interface_exceptions_message_id_interface_messages"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["order_test_id"],
            ["order_tests.id"],
            name=op.f("fk_interface_exceptions_order_test_id_order_tests"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_interface_exceptions_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["result_id"], ["results.id"], name=op.f("fk_interface_exceptions_result_id_results")
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_interface_exceptions_sample_id_samples")
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["catalog_tests.id"],
            name=op.f("fk_interface_exceptions_test_id_catalog_tests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interface_exceptions")),
    )
    op.create_index(
        op.f("ix_interface_exceptions_instrument_id"),
        "interface_exceptions",
        ["instrument_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_interface_exceptions_message_id"),
        "interface_exceptions",
        ["message_id"],
        unique=False,
    )
    op.create_index(
        "ix_interface_exceptions_org_status",
        "interface_exceptions",
        ["organisation_id", "status"],
        unique=False,
    )
    op.create_index(
        op.f("ix_interface_exceptions_organisation_id"),
        "interface_exceptions",
        ["organisation_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_interface_exceptions_organisation_id"), table_name="interface_exceptions"
    )
    op.drop_index("ix_interface_exceptions_org_status", table_name="interface_exceptions")
    op.drop_index(op.f("ix_interface_exceptions_message_id"), table_name="interface_exceptions")
    op.drop_index(op.f("ix_interface_exceptions_instrument_id"), table_name="interface_exceptions")
    op.drop_table("interface_exceptions")
    op.drop_index(
        "uq_interface_messages_dedupe",
        table_name="interface_messages",
        postgresql_where=sa.text("dedupe_key IS NOT NULL AND status <> 'duplicate'"),
    )
    op.drop_index(op.f("ix_interface_messages_organisation_id"), table_name="interface_messages")
    op.drop_index("ix_interface_messages_instrument_received", table_name="interface_messages")
    op.drop_table("interface_messages")
    op.drop_index(op.f("ix_instrument_test_maps_test_id"), table_name="instrument_test_maps")
    op.drop_index(
        op.f("ix_instrument_test_maps_organisation_id"), table_name="instrument_test_maps"
    )
    op.drop_table("instrument_test_maps")
    op.drop_index(op.f("ix_instruments_organisation_id"), table_name="instruments")
    op.drop_index(op.f("ix_instruments_branch_id"), table_name="instruments")
    op.drop_table("instruments")
