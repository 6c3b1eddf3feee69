"""Home collection: service areas (pincodes per branch), slots with capacity and a booked
count that never exceeds it, blackout days, per-test preparation, home visits (one live
visit per patient per day) and the one-time codes of the patient booking link.

Revision ID: 0020_appointments
Revises: 0018_qc_autoverify
Create Date: 2026-12-07 15:58:54.839298
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020_appointments"
down_revision: str | None = "0021_einvoice"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "appointment_areas",
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("pincode", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=True),
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
            ["branch_id"], ["branches.id"], name=op.f("fk_appointment_areas_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_appointment_areas_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_areas")),
        sa.UniqueConstraint(
            "branch_id", "pincode", name=op.f("uq_appointment_areas_branch_id_pincode")
        ),
    )
    op.create_index(
        op.f("ix_appointment_areas_branch_id"), "appointment_areas", ["branch_id"], unique=False
    )
    op.create_index(
        op.f("ix_appointment_areas_organisation_id"),
        "appointment_areas",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "appointment_blackouts",
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
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
            ["branch_id"], ["branches.id"], name=op.f("fk_appointment_blackouts_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_appointment_blackouts_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_blackouts")),
        sa.UniqueConstraint(
            "branch_id", "day", name=op.f("uq_appointment_blackouts_branch_id_day")
        ),
    )
    op.create_index(
        op.f("ix_appointment_blackouts_organisation_id"),
        "appointment_blackouts",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "appointment_otps",
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("mobile_index", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branches.id"], name=op.f("fk_appointment_otps_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_appointment_otps_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_otps")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_appointment_otps_token_hash")),
    )
    op.create_index(
        "ix_appointment_otps_mobile",
        "appointment_otps",
        ["organisation_id", "mobile_index"],
        unique=False,
    )
    op.create_index(
        op.f("ix_appointment_otps_organisation_id"),
        "appointment_otps",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "appointment_preparations",
        sa.Column("test_id", sa.Uuid(), nullable=False),
        sa.Column("fasting_hours", sa.Integer(), server_default="0", nullable=False),
        sa.Column("instructions", sa.String(length=500), nullable=True),
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
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_appointment_preparations_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["catalog_tests.id"],
            name=op.f("fk_appointment_preparations_test_id_catalog_tests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_preparations")),
        sa.UniqueConstraint(
            "organisation_id",
            "test_id",
            name=op.f("uq_appointment_preparations_organisation_id_test_id"),
        ),
    )
    op.create_index(
        op.f("ix_appointment_preparations_organisation_id"),
        "appointment_preparations",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "appointment_slots",
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("phlebotomists", sa.Integer(), nullable=False),
        sa.Column("visits_per_phlebotomist", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), server_default="0", nullable=False),
        sa.Column("closed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
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
        sa.CheckConstraint(
            "booked >= 0 AND booked <= capacity",
            name=op.f("ck_appointment_slots_booked_within_capacity"),
        ),
        sa.CheckConstraint(
            "ends_at > starts_at", name=op.f("ck_appointment_slots_window_positive")
        ),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branches.id"], name=op.f("fk_appointment_slots_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_appointment_slots_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_slots")),
        sa.UniqueConstraint(
            "branch_id", "starts_at", name=op.f("uq_appointment_slots_branch_id_starts_at")
        ),
    )
    op.create_index(
        "ix_appointment_slots_branch_day", "appointment_slots", ["branch_id", "day"], unique=False
    )
    op.create_index(
        op.f("ix_appointment_slots_organisation_id"),
        "appointment_slots",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "appointments",
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("slot_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("landmark", sa.String(length=200), nullable=True),
        sa.Column("pincode", sa.String(length=6), nullable=False),
        sa.Column("latitude", sa.Numeric(precision=9, scale=6), nullable=True),
        sa.Column("longitude", sa.Numeric(precision=9, scale=6), nullable=True),
        sa.Column("notes", sa.String(length=500), nullable=True),
        sa.Column("booked_via", sa.String(length=16), nullable=False),
        sa.Column("booked_by_id", sa.Uuid(), nullable=True),
        sa.Column("phlebotomist_id", sa.Uuid(), nullable=True),
        sa.Column("run_position", sa.Integer(), nullable=True),
        sa.Column(
            "status_times",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("status_reason", sa.String(length=300), nullable=True),
        sa.Column("reschedule_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
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
            ["booked_by_id"], ["users.id"], name=op.f("fk_appointments_booked_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branches.id"], name=op.f("fk_appointments_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_appointments_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_appointments_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_appointments_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["counter_payments.id"],
            name=op.f("fk_appointments_payment_id_counter_payments"),
        ),
        sa.ForeignKeyConstraint(
            ["phlebotomist_id"], ["users.id"], name=op.f("fk_appointments_phlebotomist_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["appointment_slots.id"],
            name=op.f("fk_appointments_slot_id_appointment_slots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
    )
    op.create_index(
        "ix_appointments_branch_day", "appointments", ["branch_id", "day"], unique=False
    )
    op.create_index(
        op.f("ix_appointments_organisation_id"), "appointments", ["organisation_id"], unique=False
    )
    op.create_index(
        op.f("ix_appointments_patient_id"), "appointments", ["patient_id"], unique=False
    )
    op.create_index(
        "ix_appointments_phlebotomist_day", "appointments", ["phlebotomist_id", "day"], unique=False
    )
    op.create_index(op.f("ix_appointments_slot_id"), "appointments", ["slot_id"], unique=False)
    op.create_index(
        "uq_appointments_patient_day_live",
        "appointments",
        ["organisation_id", "patient_id", "day"],
        unique=True,
        postgresql_where=sa.text("status IN ('booked', 'assigned', 'on_the_way', 'arrived')"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_appointments_patient_day_live",
        table_name="appointments",
        postgresql_where=sa.text("status IN ('booked', 'assigned', 'on_the_way', 'arrived')"),
    )
    op.drop_index(op.f("ix_appointments_slot_id"), table_name="appointments")
    op.drop_index("ix_appointments_phlebotomist_day", table_name="appointments")
    op.drop_index(op.f("ix_appointments_patient_id"), table_name="appointments")
    op.drop_index(op.f("ix_appointments_organisation_id"), table_name="appointments")
    op.drop_index("ix_appointments_branch_day", table_name="appointments")
    op.drop_table("appointments")
    op.drop_index(op.f("ix_appointment_slots_organisation_id"), table_name="appointment_slots")
    op.drop_index("ix_appointment_slots_branch_day", table_name="appointment_slots")
    op.drop_table("appointment_slots")
    op.drop_index(
        op.f("ix_appointment_preparations_organisation_id"), table_name="appointment_preparations"
    )
    op.drop_table("appointment_preparations")
    op.drop_index(op.f("ix_appointment_otps_organisation_id"), table_name="appointment_otps")
    op.drop_index("ix_appointment_otps_mobile", table_name="appointment_otps")
    op.drop_table("appointment_otps")
    op.drop_index(
        op.f("ix_appointment_blackouts_organisation_id"), table_name="appointment_blackouts"
    )
    op.drop_table("appointment_blackouts")
    op.drop_index(op.f("ix_appointment_areas_organisation_id"), table_name="appointment_areas")
    op.drop_index(op.f("ix_appointment_areas_branch_id"), table_name="appointment_areas")
    op.drop_table("appointment_areas")
