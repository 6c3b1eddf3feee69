"""Sync fixes: a conflict's current value (superseded conflicts), and sealed copies of personal
fields in field history and conflicts (issues 10 and 18).

Existing field history rows of a patient's mobile, e-mail, address or ABHA address are sealed
(encrypted into ``value_sealed``, masked in ``value``) with the running key.

Revision ID: 0011_sync_fixes
Revises: 0009_sync
Create Date: 2026-12-07 14:00:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_sync_fixes"
down_revision: str | None = "0009_sync"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The patients module's personal fields as they stood when this migration was written.
_SENSITIVE_PATIENT_FIELDS = ("mobile", "email", "address", "abha_address")


def upgrade() -> None:
    op.add_column(
        "sync_conflicts",
        sa.Column("current_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("sync_conflicts", sa.Column("sealed_values", sa.Text(), nullable=True))
    op.add_column("sync_field_history", sa.Column("value_sealed", sa.Text(), nullable=True))
    # What each conflict showed as the field's value: the resolution, else the value the field
    # kept (the client's for an auto-applied identity review).
    op.execute(
        "UPDATE sync_conflicts SET current_value = CASE "
        "WHEN status = 'RESOLVED' THEN resolution_value "
        "WHEN kind = 'LWW_REVIEW' AND resolution_reason = 'auto-applied, for review' "
        "THEN client_value ELSE server_value END"
    )
    seal_history(op.get_bind())


def seal_history(connection: sa.Connection) -> int:
    """Seal the patient personal fields kept in clear in field history; returns how many."""
    rows = connection.execute(
        sa.text(
            "SELECT id, field, value FROM sync_field_history WHERE entity = 'patient' "
            "AND field = ANY(:fields) AND value_sealed IS NULL "
            "AND value IS NOT NULL AND value <> 'null'::jsonb"
        ),
        {"fields": list(_SENSITIVE_PATIENT_FIELDS)},
    ).all()
    if not rows:
        return 0
    from nidaan.kit.crypto import get_cipher
    from nidaan.kit.phone import mask_mobile

    cipher = get_cipher()
    for row in rows:
        value = row.value
        shown = mask_mobile(str(value)) if row.field == "mobile" else "[redacted]"
        connection.execute(
            sa.text(
                "UPDATE sync_field_history SET value = CAST(:shown AS jsonb), "
                "value_sealed = :sealed WHERE id = :id"
            ),
            {
                "id": row.id,
                "shown": json.dumps(shown),
                "sealed": cipher.encrypt(json.dumps(value), "sync_field_history.value"),
            },
        )
    return len(rows)


def downgrade() -> None:
    # Sealed values stay sealed (their masked form remains in ``value``): a downgrade must not
    # write personal data back in clear.
    op.drop_column("sync_field_history", "value_sealed")
    op.drop_column("sync_conflicts", "sealed_values")
    op.drop_column("sync_conflicts", "current_value")
