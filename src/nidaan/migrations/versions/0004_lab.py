"""Core lab workflow: catalogue, patients, orders, samples, manifests, results, reports.

Revision ID: 0004_lab
Revises: 0003_events
Create Date: 2026-11-26 07:00:38.586459
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_lab"
down_revision: str | None = "0003_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_panels",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
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
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_catalog_panels_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_panels")),
        sa.UniqueConstraint(
            "organisation_id", "code", name=op.f("uq_catalog_panels_organisation_id_code")
        ),
    )
    op.create_index(
        op.f("ix_catalog_panels_organisation_id"),
        "catalog_panels",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "catalog_tests",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("loinc", sa.String(length=16), nullable=True),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("specimen_type", sa.String(length=64), nullable=False),
        sa.Column("container", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=200), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=True),
        sa.Column(
            "unit_conversions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("result_type", sa.String(length=16), nullable=False),
        sa.Column("decimals", sa.Integer(), server_default="0", nullable=False),
        sa.Column("formula", sa.Text(), nullable=True),
        sa.Column(
            "choices", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("tat_minutes", sa.Integer(), server_default="1440", nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False),
        sa.Column("required_verifications", sa.Integer(), server_default="1", nullable=False),
        sa.Column("delta_percent", sa.Numeric(precision=8, scale=2), nullable=True),
        sa.Column("delta_absolute", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("delta_window_days", sa.Integer(), nullable=True),
        sa.Column("accredited", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("sort_order", sa.Integer(), server_default="0", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
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
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_catalog_tests_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_tests")),
        sa.UniqueConstraint(
            "organisation_id", "code", name=op.f("uq_catalog_tests_organisation_id_code")
        ),
    )
    op.create_index(op.f("ix_catalog_tests_loinc"), "catalog_tests", ["loinc"], unique=False)
    op.create_index(
        op.f("ix_catalog_tests_organisation_id"), "catalog_tests", ["organisation_id"], unique=False
    )
    op.create_table(
        "sequences",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(length=120), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_sequences_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("organisation_id", "scope", name=op.f("pk_sequences")),
    )
    op.create_table(
        "catalog_panel_tests",
        sa.Column("panel_id", sa.Uuid(), nullable=False),
        sa.Column("test_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["panel_id"],
            ["catalog_panels.id"],
            name=op.f("fk_catalog_panel_tests_panel_id_catalog_panels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["catalog_tests.id"],
            name=op.f("fk_catalog_panel_tests_test_id_catalog_tests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("panel_id", "test_id", name=op.f("pk_catalog_panel_tests")),
    )
    op.create_table(
        "catalog_reference_ranges",
        sa.Column("test_id", sa.Uuid(), nullable=False),
        sa.Column("sex", sa.String(length=16), nullable=True),
        sa.Column("age_min_days", sa.Integer(), nullable=True),
        sa.Column("age_max_days", sa.Integer(), nullable=True),
        sa.Column("pregnant", sa.Boolean(), nullable=True),
        sa.Column("low", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("high", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("critical_low", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("critical_high", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("text", sa.String(length=300), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_catalog_reference_ranges_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["catalog_tests.id"],
            name=op.f("fk_catalog_reference_ranges_test_id_catalog_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_reference_ranges")),
    )
    op.create_index(
        op.f("ix_catalog_reference_ranges_organisation_id"),
        "catalog_reference_ranges",
        ["organisation_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_catalog_reference_ranges_test_id"),
        "catalog_reference_ranges",
        ["test_id"],
        unique=False,
    )
    op.create_table(
        "manifests",
        sa.Column("manifest_number", sa.String(length=40), nullable=False),
        sa.Column("from_branch_id", sa.Uuid(), nullable=False),
        sa.Column("to_branch_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("courier", sa.String(length=200), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_by_id", sa.Uuid(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
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
            ["dispatched_by_id"], ["users.id"], name=op.f("fk_manifests_dispatched_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["from_branch_id"], ["branches.id"], name=op.f("fk_manifests_from_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_manifests_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["to_branch_id"], ["branches.id"], name=op.f("fk_manifests_to_branch_id_branches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manifests")),
        sa.UniqueConstraint(
            "organisation_id",
            "manifest_number",
            name=op.f("uq_manifests_organisation_id_manifest_number"),
        ),
    )
    op.create_index(
        op.f("ix_manifests_organisation_id"), "manifests", ["organisation_id"], unique=False
    )
    op.create_table(
        "patients",
        sa.Column("mrn", sa.String(length=32), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("name_normalized", sa.String(length=200), nullable=False),
        sa.Column("sex", sa.String(length=16), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("dob_estimated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("mobile_encrypted", sa.Text(), nullable=True),
        sa.Column("mobile_index", sa.String(length=64), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=64), nullable=True),
        sa.Column("pincode", sa.String(length=6), nullable=True),
        sa.Column("preferred_language", sa.String(length=8), server_default="en", nullable=False),
        sa.Column("abha_number_encrypted", sa.Text(), nullable=True),
        sa.Column("abha_number_index", sa.String(length=64), nullable=True),
        sa.Column("abha_address", sa.String(length=120), nullable=True),
        sa.Column("referring_doctor", sa.String(length=200), nullable=True),
        sa.Column("pregnant", sa.Boolean(), nullable=True),
        sa.Column("weight_kg", sa.Numeric(precision=6, scale=2), nullable=True),
        sa.Column("merged_into_id", sa.Uuid(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("registered_at_branch_id", sa.Uuid(), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
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
            ["created_by_id"], ["users.id"], name=op.f("fk_patients_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"], ["patients.id"], name=op.f("fk_patients_merged_into_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_patients_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["registered_at_branch_id"],
            ["branches.id"],
            name=op.f("fk_patients_registered_at_branch_id_branches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("organisation_id", "mrn", name=op.f("uq_patients_organisation_id_mrn")),
    )
    op.create_index(
        op.f("ix_patients_abha_number_index"), "patients", ["abha_number_index"], unique=False
    )
    op.create_index(op.f("ix_patients_mobile_index"), "patients", ["mobile_index"], unique=False)
    op.create_index(
        op.f("ix_patients_name_normalized"), "patients", ["name_normalized"], unique=False
    )
    op.create_index(
        op.f("ix_patients_organisation_id"), "patients", ["organisation_id"], unique=False
    )
    op.create_table(
        "orders",
        sa.Column("order_number", sa.String(length=40), nullable=False),
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("referring_doctor", sa.String(length=200), nullable=True),
        sa.Column("clinical_notes", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
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
            ["branch_id"], ["branches.id"], name=op.f("fk_orders_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_orders_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_orders_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_orders_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint(
            "organisation_id", "order_number", name=op.f("uq_orders_organisation_id_order_number")
        ),
    )
    op.create_index(op.f("ix_orders_branch_id"), "orders", ["branch_id"], unique=False)
    op.create_index(op.f("ix_orders_organisation_id"), "orders", ["organisation_id"], unique=False)
    op.create_index(op.f("ix_orders_patient_id"), "orders", ["patient_id"], unique=False)
    op.create_table(
        "patient_duplicate_flags",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["patients.id"],
            name=op.f("fk_patient_duplicate_flags_candidate_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_patient_duplicate_flags_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_patient_duplicate_flags_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"],
            ["users.id"],
            name=op.f("fk_patient_duplicate_flags_resolved_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_duplicate_flags")),
        sa.UniqueConstraint(
            "patient_id",
            "candidate_id",
            name=op.f("uq_patient_duplicate_flags_patient_id_candidate_id"),
        ),
    )
    op.create_index(
        op.f("ix_patient_duplicate_flags_organisation_id"),
        "patient_duplicate_flags",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "reports",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("report_number", sa.String(length=40), nullable=False),
        sa.Column("report_version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("supersedes_id", sa.Uuid(), nullable=True),
        sa.Column("amended", sa.Boolean(), nullable=False),
        sa.Column("amendment_reason", sa.String(length=500), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("verification_code", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_reports_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_reports_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"], ["reports.id"], name=op.f("fk_reports_supersedes_id_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint(
            "order_id", "report_version", name=op.f("uq_reports_order_id_report_version")
        ),
        sa.UniqueConstraint(
            "organisation_id",
            "report_number",
            name=op.f("uq_reports_organisation_id_report_number"),
        ),
        sa.UniqueConstraint("verification_code", name=op.f("uq_reports_verification_code")),
    )
    op.create_index(op.f("ix_reports_order_id"), "reports", ["order_id"], unique=False)
    op.create_index(
        op.f("ix_reports_organisation_id"), "reports", ["organisation_id"], unique=False
    )
    op.create_table(
        "samples",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("accession", sa.String(length=40), nullable=False),
        sa.Column("specimen_type", sa.String(length=64), nullable=False),
        sa.Column("container", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collected_by_id", sa.Uuid(), nullable=True),
        sa.Column("collected_at_branch_id", sa.Uuid(), nullable=True),
        sa.Column("manifest_id", sa.Uuid(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_by_id", sa.Uuid(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_by_id", sa.Uuid(), nullable=True),
        sa.Column("rejection_reason", sa.String(length=32), nullable=True),
        sa.Column("rejection_note", sa.String(length=500), nullable=True),
        sa.Column("recollection_id", sa.Uuid(), nullable=True),
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
            ["branch_id"], ["branches.id"], name=op.f("fk_samples_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["collected_at_branch_id"],
            ["branches.id"],
            name=op.f("fk_samples_collected_at_branch_id_branches"),
        ),
        sa.ForeignKeyConstraint(
            ["collected_by_id"], ["users.id"], name=op.f("fk_samples_collected_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["manifest_id"], ["manifests.id"], name=op.f("fk_samples_manifest_id_manifests")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_samples_order_id_orders"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_samples_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["received_by_id"], ["users.id"], name=op.f("fk_samples_received_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["recollection_id"], ["samples.id"], name=op.f("fk_samples_recollection_id_samples")
        ),
        sa.ForeignKeyConstraint(
            ["rejected_by_id"], ["users.id"], name=op.f("fk_samples_rejected_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_samples")),
        sa.UniqueConstraint(
            "organisation_id", "accession", name=op.f("uq_samples_organisation_id_accession")
        ),
    )
    op.create_index(op.f("ix_samples_order_id"), "samples", ["order_id"], unique=False)
    op.create_index(
        op.f("ix_samples_organisation_id"), "samples", ["organisation_id"], unique=False
    )
    op.create_index(op.f("ix_samples_status"), "samples", ["status"], unique=False)
    op.create_table(
        "order_tests",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("test_id", sa.Uuid(), nullable=False),
        sa.Column("panel_id", sa.Uuid(), nullable=True),
        sa.Column("sample_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=300), nullable=True),
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
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_tests_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_order_tests_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["panel_id"], ["catalog_panels.id"], name=op.f("fk_order_tests_panel_id_catalog_panels")
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_order_tests_sample_id_samples")
        ),
        sa.ForeignKeyConstraint(
            ["test_id"], ["catalog_tests.id"], name=op.f("fk_order_tests_test_id_catalog_tests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_tests")),
    )
    op.create_index(op.f("ix_order_tests_order_id"), "order_tests", ["order_id"], unique=False)
    op.create_index(
        op.f("ix_order_tests_organisation_id"), "order_tests", ["organisation_id"], unique=False
    )
    op.create_index(op.f("ix_order_tests_sample_id"), "order_tests", ["sample_id"], unique=False)
    op.create_table(
        "results",
        sa.Column("order_test_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("sample_id", sa.Uuid(), nullable=True),
        sa.Column("test_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("result_version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("supersedes_id", sa.Uuid(), nullable=True),
        sa.Column("correction_reason", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("entered_value", sa.String(length=200), nullable=False),
        sa.Column("entered_unit", sa.String(length=32), nullable=True),
        sa.Column("value_numeric", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("value_code", sa.String(length=32), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=True),
        sa.Column("flag", sa.String(length=2), nullable=True),
        sa.Column("reference_low", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("reference_high", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("reference_text", sa.String(length=300), nullable=True),
        sa.Column("delta_failed", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("delta_previous_value", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("delta_previous_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hold_reason", sa.String(length=300), nullable=True),
        sa.Column("instrument_flags", sa.String(length=100), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entered_by_id", sa.Uuid(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_by_id", sa.Uuid(), nullable=True),
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
            ["entered_by_id"], ["users.id"], name=op.f("fk_results_entered_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_results_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["order_test_id"],
            ["order_tests.id"],
            name=op.f("fk_results_order_test_id_order_tests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_results_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_results_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_results_sample_id_samples")
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"], ["results.id"], name=op.f("fk_results_supersedes_id_results")
        ),
        sa.ForeignKeyConstraint(
            ["test_id"], ["catalog_tests.id"], name=op.f("fk_results_test_id_catalog_tests")
        ),
        sa.ForeignKeyConstraint(
            ["verified_by_id"], ["users.id"], name=op.f("fk_results_verified_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
        sa.UniqueConstraint(
            "order_test_id", "result_version", name=op.f("uq_results_order_test_id_result_version")
        ),
    )
    op.create_index(op.f("ix_results_order_id"), "results", ["order_id"], unique=False)
    op.create_index(
        op.f("ix_results_organisation_id"), "results", ["organisation_id"], unique=False
    )
    op.create_index(
        "ix_results_patient_id_test_id", "results", ["patient_id", "test_id"], unique=False
    )
    op.create_index(op.f("ix_results_status"), "results", ["status"], unique=False)
    op.create_index(
        "uq_results_current_per_order_test",
        "results",
        ["order_test_id"],
        unique=True,
        postgresql_where=sa.text("is_current"),
    )
    op.create_table(
        "critical_alerts",
        sa.Column("result_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("test_id", sa.Uuid(), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("flag", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by_id", sa.Uuid(), nullable=True),
        sa.Column("notified_person", sa.String(length=200), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_back", sa.Boolean(), nullable=True),
        sa.Column("notes", sa.String(length=1000), nullable=True),
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
            ["acknowledged_by_id"],
            ["users.id"],
            name=op.f("fk_critical_alerts_acknowledged_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_critical_alerts_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_critical_alerts_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_critical_alerts_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"], ["results.id"], name=op.f("fk_critical_alerts_result_id_results")
        ),
        sa.ForeignKeyConstraint(
            ["test_id"], ["catalog_tests.id"], name=op.f("fk_critical_alerts_test_id_catalog_tests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_critical_alerts")),
    )
    op.create_index(
        op.f("ix_critical_alerts_organisation_id"),
        "critical_alerts",
        ["organisation_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_critical_alerts_result_id"), "critical_alerts", ["result_id"], unique=False
    )
    op.create_index(op.f("ix_critical_alerts_status"), "critical_alerts", ["status"], unique=False)
    op.create_table(
        "result_verifications",
        sa.Column("result_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_result_verifications_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["results.id"],
            name=op.f("fk_result_verifications_result_id_results"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_result_verifications_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_result_verifications")),
        sa.UniqueConstraint(
            "result_id", "user_id", name=op.f("uq_result_verifications_result_id_user_id")
        ),
    )
    op.create_index(
        op.f("ix_result_verifications_organisation_id"),
        "result_verifications",
        ["organisation_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_result_verifications_result_id"),
        "result_verifications",
        ["result_id"],
        unique=False,
    )
    op.add_column("organisations", sa.Column("address", sa.String(length=500), nullable=True))
    op.add_column("organisations", sa.Column("phone", sa.String(length=32), nullable=True))
    op.add_column("organisations", sa.Column("email", sa.String(length=254), nullable=True))
    op.add_column("organisations", sa.Column("accreditation", sa.String(length=300), nullable=True))
    op.add_column(
        "organisations",
        sa.Column(
            "allow_self_verification", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_column("organisations", "allow_self_verification")
    op.drop_column("organisations", "accreditation")
    op.drop_column("organisations", "email")
    op.drop_column("organisations", "phone")
    op.drop_column("organisations", "address")
    op.drop_index(op.f("ix_result_verifications_result_id"), table_name="result_verifications")
    op.drop_index(
        op.f("ix_result_verifications_organisation_id"), table_name="result_verifications"
    )
    op.drop_table("result_verifications")
    op.drop_index(op.f("ix_critical_alerts_status"), table_name="critical_alerts")
    op.drop_index(op.f("ix_critical_alerts_result_id"), table_name="critical_alerts")
    op.drop_index(op.f("ix_critical_alerts_organisation_id"), table_name="critical_alerts")
    op.drop_table("critical_alerts")
    op.drop_index(
        "uq_results_current_per_order_test",
        table_name="results",
        postgresql_where=sa.text("is_current"),
    )
    op.drop_index(op.f("ix_results_status"), table_name="results")
    op.drop_index("ix_results_patient_id_test_id", table_name="results")
    op.drop_index(op.f("ix_results_organisation_id"), table_name="results")
    op.drop_index(op.f("ix_results_order_id"), table_name="results")
    op.drop_table("results")
    op.drop_index(op.f("ix_order_tests_sample_id"), table_name="order_tests")
    op.drop_index(op.f("ix_order_tests_organisation_id"), table_name="order_tests")
    op.drop_index(op.f("ix_order_tests_order_id"), table_name="order_tests")
    op.drop_table("order_tests")
    op.drop_index(op.f("ix_samples_status"), table_name="samples")
    op.drop_index(op.f("ix_samples_organisation_id"), table_name="samples")
    op.drop_index(op.f("ix_samples_order_id"), table_name="samples")
    op.drop_table("samples")
    op.drop_index(op.f("ix_reports_organisation_id"), table_name="reports")
    op.drop_index(op.f("ix_reports_order_id"), table_name="reports")
    op.drop_table("reports")
    op.drop_index(
        op.f("ix_patient_duplicate_flags_organisation_id"), table_name="patient_duplicate_flags"
    )
    op.drop_table("patient_duplicate_flags")
    op.drop_index(op.f("ix_orders_patient_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_organisation_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_branch_id"), table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_patients_organisation_id"), table_name="patients")
    op.drop_index(op.f("ix_patients_name_normalized"), table_name="patients")
    op.drop_index(op.f("ix_patients_mobile_index"), table_name="patients")
    op.drop_index(op.f("ix_patients_abha_number_index"), table_name="patients")
    op.drop_table("patients")
    op.drop_index(op.f("ix_manifests_organisation_id"), table_name="manifests")
    op.drop_table("manifests")
    op.drop_index(
        op.f("ix_catalog_reference_ranges_test_id"), table_name="catalog_reference_ranges"
    )
    op.drop_index(
        op.f("ix_catalog_reference_ranges_organisation_id"), table_name="catalog_reference_ranges"
    )
    op.drop_table("catalog_reference_ranges")
    op.drop_table("catalog_panel_tests")
    op.drop_table("sequences")
    op.drop_index(op.f("ix_catalog_tests_organisation_id"), table_name="catalog_tests")
    op.drop_index(op.f("ix_catalog_tests_loinc"), table_name="catalog_tests")
    op.drop_table("catalog_tests")
    op.drop_index(op.f("ix_catalog_panels_organisation_id"), table_name="catalog_panels")
    op.drop_table("catalog_panels")
