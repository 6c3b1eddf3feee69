"""Files (versioned records over the object store, soft delete, retention) with existing
report PDFs moved onto them; patient notifications (consent, messages, delivery statuses,
webhook inbox, rate buckets).

Revision ID: 0013_files_notifications
Revises: 0009_sync
Create Date: 2026-12-07 12:34:57.915743
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_files_notifications"
down_revision: str | None = "0012_report_nabl"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("purpose", sa.String(length=24), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("subject_type", sa.String(length=32), nullable=True),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("uploaded_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by_id", sa.Uuid(), nullable=True),
        sa.Column("delete_reason", sa.String(length=500), nullable=True),
        sa.Column("purge_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deleted_by_id"], ["users.id"], name=op.f("fk_files_deleted_by_id_users")
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_files_order_id_orders")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_files_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_files_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"], ["users.id"], name=op.f("fk_files_uploaded_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint(
            "organisation_id",
            "purpose",
            "document_id",
            "version",
            name=op.f("uq_files_organisation_id_purpose_document_id_version"),
        ),
        sa.UniqueConstraint("storage_key", name=op.f("uq_files_storage_key")),
    )
    op.create_index(op.f("ix_files_document_id"), "files", ["document_id"], unique=False)
    op.create_index(op.f("ix_files_order_id"), "files", ["order_id"], unique=False)
    op.create_index(op.f("ix_files_organisation_id"), "files", ["organisation_id"], unique=False)
    op.create_index(op.f("ix_files_patient_id"), "files", ["patient_id"], unique=False)
    op.create_index(op.f("ix_files_purge_after"), "files", ["purge_after"], unique=False)
    op.create_index(op.f("ix_files_subject_id"), "files", ["subject_id"], unique=False)
    op.add_column("reports", sa.Column("file_id", sa.Uuid(), nullable=True))
    op.add_column("reports", sa.Column("source_fingerprint", sa.String(length=32), nullable=True))
    op.create_index(op.f("ix_reports_file_id"), "reports", ["file_id"], unique=False)
    op.create_foreign_key(op.f("fk_reports_file_id_files"), "reports", "files", ["file_id"], ["id"])
    _move_reports_onto_file_records()
    op.create_table(
        "notification_rate_buckets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_notification_rate_buckets")),
    )
    op.create_table(
        "notification_webhook_inbox",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_webhook_inbox")),
        sa.UniqueConstraint(
            "provider",
            "body_sha256",
            name=op.f("uq_notification_webhook_inbox_provider_body_sha256"),
        ),
    )
    op.create_table(
        "notification_doctor_contacts",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_normalized", sa.String(length=200), nullable=False),
        sa.Column("mobile_encrypted", sa.Text(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("preferred_language", sa.String(length=8), server_default="en", nullable=False),
        sa.Column("channels", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_notification_doctor_contacts_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_doctor_contacts")),
        sa.UniqueConstraint(
            "organisation_id",
            "name_normalized",
            name=op.f("uq_notification_doctor_contacts_organisation_id_name_normalized"),
        ),
    )
    op.create_index(
        op.f("ix_notification_doctor_contacts_organisation_id"),
        "notification_doctor_contacts",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "notification_policies",
        sa.Column(
            "report_to_patient", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "report_to_doctor", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "send_report_document", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "critical_to_patient", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "critical_to_doctor", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "payment_confirmation", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "appointment_reminder", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "channels",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("ARRAY['whatsapp','sms','email']"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_notification_policies_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_policies")),
        sa.UniqueConstraint(
            "organisation_id", name=op.f("uq_notification_policies_organisation_id")
        ),
    )
    op.create_index(
        op.f("ix_notification_policies_organisation_id"),
        "notification_policies",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "notification_consents",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("opted_in", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("notice_version", sa.String(length=32), nullable=True),
        sa.Column("opted_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by_id", sa.Uuid(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_notification_consents_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_notification_consents_patient_id_patients"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["users.id"],
            name=op.f("fk_notification_consents_recorded_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_consents")),
        sa.UniqueConstraint(
            "organisation_id",
            "patient_id",
            "channel",
            name=op.f("uq_notification_consents_organisation_id_patient_id_channel"),
        ),
    )
    op.create_index(
        op.f("ix_notification_consents_organisation_id"),
        "notification_consents",
        ["organisation_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_notification_consents_patient_id"),
        "notification_consents",
        ["patient_id"],
        unique=False,
    )
    op.create_table(
        "notifications",
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("template", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient_type", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("doctor_contact_id", sa.Uuid(), nullable=True),
        sa.Column("to_address_encrypted", sa.Text(), nullable=True),
        sa.Column("to_index", sa.String(length=64), nullable=True),
        sa.Column("parameters_encrypted", sa.Text(), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=True),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.Column("file_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_title", sa.String(length=300), nullable=True),
        sa.Column("fallback_of_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["doctor_contact_id"],
            ["notification_doctor_contacts.id"],
            name=op.f("fk_notifications_doctor_contact_id_notification_doctor_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["fallback_of_id"],
            ["notifications.id"],
            name=op.f("fk_notifications_fallback_of_id_notifications"),
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_notifications_file_id_files")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_notifications_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_notifications_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint(
            "organisation_id",
            "dedupe_key",
            name=op.f("uq_notifications_organisation_id_dedupe_key"),
        ),
        sa.UniqueConstraint(
            "provider_message_id", name=op.f("uq_notifications_provider_message_id")
        ),
    )
    op.create_index(
        "ix_notifications_due", "notifications", ["status", "next_attempt_at"], unique=False
    )
    op.create_index(
        op.f("ix_notifications_organisation_id"), "notifications", ["organisation_id"], unique=False
    )
    op.create_index(
        op.f("ix_notifications_patient_id"), "notifications", ["patient_id"], unique=False
    )
    op.create_index(
        "ix_notifications_recipient_recent",
        "notifications",
        ["channel", "to_index", "claimed_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_notifications_subject_id"), "notifications", ["subject_id"], unique=False
    )
    op.create_table(
        "notification_events",
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_title", sa.String(length=300), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_events_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_notification_events_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_events")),
    )
    op.create_index(
        op.f("ix_notification_events_notification_id"),
        "notification_events",
        ["notification_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_notification_events_organisation_id"),
        "notification_events",
        ["organisation_id"],
        unique=False,
    )
    op.create_index(
        "uq_notification_events_provider_status",
        "notification_events",
        ["notification_id", "status"],
        unique=True,
        postgresql_where=sa.text("source = 'provider'"),
    )


def _move_reports_onto_file_records() -> None:
    """One file record per stored report PDF (the object stays under its key), so that
    access rules, soft delete and retention cover reports issued before this release."""
    op.execute(
        """
        INSERT INTO files (id, organisation_id, purpose, document_id, version, is_current,
                           filename, content_type, size_bytes, sha256, storage_key,
                           patient_id, order_id, subject_type, subject_id, created_at)
        SELECT gen_random_uuid(), r.organisation_id, 'report', r.order_id, r.report_version,
               r.is_current, r.report_number || '.pdf', 'application/pdf', r.size_bytes,
               r.sha256, r.storage_key, o.patient_id, r.order_id, 'report', r.id, r.created_at
        FROM reports r JOIN orders o ON o.id = r.order_id
        WHERE r.file_id IS NULL
        """
    )
    op.execute(
        """
        UPDATE reports r SET file_id = f.id
        FROM files f
        WHERE f.subject_type = 'report' AND f.subject_id = r.id AND r.file_id IS NULL
        """
    )
    # The fingerprint of the printed results used to live only in the object key.
    op.execute(
        r"""
        UPDATE reports
        SET source_fingerprint = substring(storage_key from '--([A-Za-z0-9_-]{1,32})\.pdf$')
        WHERE source_fingerprint IS NULL
        """
    )


def downgrade() -> None:
    op.drop_index(
        "uq_notification_events_provider_status",
        table_name="notification_events",
        postgresql_where=sa.text("source = 'provider'"),
    )
    op.drop_index(op.f("ix_notification_events_organisation_id"), table_name="notification_events")
    op.drop_index(op.f("ix_notification_events_notification_id"), table_name="notification_events")
    op.drop_table("notification_events")
    op.drop_index(op.f("ix_notifications_subject_id"), table_name="notifications")
    op.drop_index("ix_notifications_recipient_recent", table_name="notifications")
    op.drop_index(op.f("ix_notifications_patient_id"), table_name="notifications")
    op.drop_index(op.f("ix_notifications_organisation_id"), table_name="notifications")
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index(op.f("ix_notification_consents_patient_id"), table_name="notification_consents")
    op.drop_index(
        op.f("ix_notification_consents_organisation_id"), table_name="notification_consents"
    )
    op.drop_table("notification_consents")
    op.drop_index(
        op.f("ix_notification_policies_organisation_id"), table_name="notification_policies"
    )
    op.drop_table("notification_policies")
    op.drop_index(
        op.f("ix_notification_doctor_contacts_organisation_id"),
        table_name="notification_doctor_contacts",
    )
    op.drop_table("notification_doctor_contacts")
    op.drop_table("notification_webhook_inbox")
    op.drop_table("notification_rate_buckets")
    op.drop_constraint(op.f("fk_reports_file_id_files"), "reports", type_="foreignkey")
    op.drop_index(op.f("ix_reports_file_id"), table_name="reports")
    op.drop_column("reports", "source_fingerprint")
    op.drop_column("reports", "file_id")
    op.drop_index(op.f("ix_files_subject_id"), table_name="files")
    op.drop_index(op.f("ix_files_purge_after"), table_name="files")
    op.drop_index(op.f("ix_files_patient_id"), table_name="files")
    op.drop_index(op.f("ix_files_organisation_id"), table_name="files")
    op.drop_index(op.f("ix_files_order_id"), table_name="files")
    op.drop_index(op.f("ix_files_document_id"), table_name="files")
    op.drop_table("files")
