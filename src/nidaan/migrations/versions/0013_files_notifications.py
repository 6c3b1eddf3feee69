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

revision: str = "0013_files_notifications"
down_revision: str | None = "0009_sync"
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
