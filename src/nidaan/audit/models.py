"""Audit tables: the append-only, hash-chained log and one chain head per organisation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin


class AuditLog(IdMixin, TenantMixin, Base):
    """One recorded change. Append-only: triggers refuse UPDATE, DELETE and TRUNCATE, except
    the one-time filling of seq/prev_hash/hash when the entry is chained after commit."""

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("organisation_id", "seq"),
        Index(
            "ix_audit_log_unchained",
            "organisation_id",
            "id",
            postgresql_where=text("hash IS NULL"),
        ),
        Index(
            "ix_audit_log_prev_id",
            "organisation_id",
            "prev_id",
            postgresql_where=text("prev_id IS NOT NULL"),
        ),
        Index(
            "ix_audit_log_organisation_id_entity_type_entity_id",
            "organisation_id",
            "entity_type",
            "entity_id",
        ),
    )

    # Empty until the entry is chained (right after its transaction commits).
    seq: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    actor_label: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(Text)
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str | None] = mapped_column(Text)
    hash: Mapped[str | None] = mapped_column(Text)
    # The entry chained just before this one (set with seq and the hashes). An entry that a
    # later one points at was chained once: if its chain columns are ever found empty again,
    # it was altered behind the triggers' back, and it is reported, never chained anew.
    prev_id: Mapped[uuid.UUID | None]


class AuditChainHead(Base):
    """The last entry of an organisation's chain; its row lock serialises that tenant's writers."""

    __tablename__ = "audit_chain_heads"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(Text)
    last_entry_id: Mapped[uuid.UUID | None]


class AccessLogEntry(IdMixin, TenantMixin, Base):
    """Someone opened a patient's record or report (DPDP Rule 6(c): who read what, not only
    who changed it). Kept one year (Rule 6(e)) and then purged by the retention job; the
    patient may see it on request, and so may the auditor role."""

    __tablename__ = "access_log"
    __table_args__ = (
        Index("ix_access_log_organisation_id_patient_id_at", "organisation_id", "patient_id", "at"),
        Index("ix_access_log_organisation_id_at", "organisation_id", "at"),
    )

    at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    patient_id: Mapped[uuid.UUID] = mapped_column()
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    actor_label: Mapped[str] = mapped_column(String(200))
    # patient, report, fhir_patient, dpdp_export ...
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    # view, download, export
    action: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
