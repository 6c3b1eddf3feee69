"""DPDP rights: consent per purpose, rights requests with their clock, nominees, legal
holds, the breach register, patients' privacy links, the read-access log, and the notice
language on messaging consent.

Revision ID: 0024_dpdp_rights
Revises: 0018_qc_autoverify
Create Date: 2026-12-07 16:30:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0024_dpdp_rights"
# The lead re-chains this at merge.
down_revision: str | None = "0020_appointments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant(table: str) -> list[Any]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f(f"fk_{table}_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def _org_index(table: str) -> None:
    op.create_index(op.f(f"ix_{table}_organisation_id"), table, ["organisation_id"])


def upgrade() -> None:
    op.add_column(
        "notification_consents", sa.Column("notice_language", sa.String(length=8), nullable=True)
    )

    op.create_table(
        "access_log",
        *_tenant("access_log"),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_label", sa.String(length=200), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
    )
    _org_index("access_log")
    op.create_index(
        "ix_access_log_organisation_id_patient_id_at",
        "access_log",
        ["organisation_id", "patient_id", "at"],
    )
    op.create_index("ix_access_log_organisation_id_at", "access_log", ["organisation_id", "at"])

    op.create_table(
        "dpdp_consents",
        *_tenant("dpdp_consents"),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("notice_version", sa.String(length=32), nullable=False),
        sa.Column("notice_language", sa.String(length=8), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by_id", sa.Uuid(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        _fk("dpdp_consents", "patient_id", "patients"),
        _fk("dpdp_consents", "recorded_by_id", "users"),
        sa.UniqueConstraint(
            "organisation_id",
            "patient_id",
            "purpose",
            name=op.f("uq_dpdp_consents_organisation_id_patient_id_purpose"),
        ),
    )
    _org_index("dpdp_consents")
    op.create_index(op.f("ix_dpdp_consents_patient_id"), "dpdp_consents", ["patient_id"])

    op.create_table(
        "dpdp_requests",
        *_tenant("dpdp_requests"),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_id", sa.Uuid(), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("outcome", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("recorded_by_id", sa.Uuid(), nullable=True),
        _fk("dpdp_requests", "patient_id", "patients"),
        _fk("dpdp_requests", "closed_by_id", "users"),
        _fk("dpdp_requests", "recorded_by_id", "users"),
    )
    _org_index("dpdp_requests")
    op.create_index(op.f("ix_dpdp_requests_patient_id"), "dpdp_requests", ["patient_id"])
    op.create_index(
        "ix_dpdp_requests_open",
        "dpdp_requests",
        ["organisation_id", "due_at"],
        postgresql_where=sa.text("status IN ('open', 'escalated')"),
    )

    op.create_table(
        "dpdp_nominees",
        *_tenant("dpdp_nominees"),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("relationship", sa.String(length=64), nullable=False),
        sa.Column("mobile_encrypted", sa.Text(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Uuid(), nullable=True),
        _fk("dpdp_nominees", "patient_id", "patients"),
        _fk("dpdp_nominees", "recorded_by_id", "users"),
        sa.UniqueConstraint(
            "organisation_id",
            "patient_id",
            name=op.f("uq_dpdp_nominees_organisation_id_patient_id"),
        ),
    )
    _org_index("dpdp_nominees")

    op.create_table(
        "dpdp_legal_holds",
        *_tenant("dpdp_legal_holds"),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("placed_by_id", sa.Uuid(), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by_id", sa.Uuid(), nullable=True),
        _fk("dpdp_legal_holds", "patient_id", "patients"),
        _fk("dpdp_legal_holds", "placed_by_id", "users"),
        _fk("dpdp_legal_holds", "released_by_id", "users"),
    )
    _org_index("dpdp_legal_holds")
    op.create_index(op.f("ix_dpdp_legal_holds_patient_id"), "dpdp_legal_holds", ["patient_id"])

    op.create_table(
        "dpdp_breaches",
        *_tenant("dpdp_breaches"),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("data_classes", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("occurred_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occurred_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("aware_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("mitigation", sa.Text(), nullable=True),
        sa.Column("board_intimated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("board_report_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cert_in_reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("principals_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        _fk("dpdp_breaches", "created_by_id", "users"),
    )
    _org_index("dpdp_breaches")

    op.create_table(
        "dpdp_patient_links",
        *_tenant("dpdp_patient_links"),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        _fk("dpdp_patient_links", "patient_id", "patients"),
        _fk("dpdp_patient_links", "created_by_id", "users"),
        sa.UniqueConstraint("token_hash", name=op.f("uq_dpdp_patient_links_token_hash")),
    )
    _org_index("dpdp_patient_links")
    op.create_index(op.f("ix_dpdp_patient_links_patient_id"), "dpdp_patient_links", ["patient_id"])


def downgrade() -> None:
    for table in (
        "dpdp_patient_links",
        "dpdp_breaches",
        "dpdp_legal_holds",
        "dpdp_nominees",
        "dpdp_requests",
        "dpdp_consents",
        "access_log",
    ):
        op.drop_table(table)
    op.drop_column("notification_consents", "notice_language")
