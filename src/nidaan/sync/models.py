"""Sync tables: the per-organisation change sequence, clients, applied ops, conflicts, history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.encrypted_type import EncryptedString
from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin


class SyncTenantState(Base):
    """One row per organisation. Locking it at commit makes sequence order commit order."""

    __tablename__ = "sync_tenant_state"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    head_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # Bumped after a restore: every client's cursor becomes invalid and it resets.
    epoch: Mapped[int] = mapped_column(Integer, server_default="1")
    # Cursors at or below this were issued before forgotten tombstones: such clients reset.
    tombstone_horizon_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SyncChange(Base):
    __tablename__ = "sync_change_log"
    __table_args__ = (Index("ix_sync_change_log_entity", "organisation_id", "entity", "entity_id"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[uuid.UUID]
    op: Mapped[str] = mapped_column(String(8))  # upsert | delete
    changed_fields: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # Branch ids that may see the row; empty means every branch.
    scope_keys: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default="{}"
    )
    origin_client_id: Mapped[uuid.UUID | None]
    op_id: Mapped[uuid.UUID | None]
    committed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SyncRowMeta(Base):
    """Per-field merge metadata of one synced row: HLC, client and row version of its last
    change (``{"full_name": {"hlc": "...", "client": "...", "v": 3}}``)."""

    __tablename__ = "sync_rows"

    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    entity_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    field_meta: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class SyncClient(TenantMixin, Base):
    """A device. Bound on first use to one user and organisation (and the branch it serves)."""

    __tablename__ = "sync_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    branch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("branches.id"))
    last_client_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_pull_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    acknowledged_ops: Mapped[int] = mapped_column(BigInteger, server_default="0")
    schema_version: Mapped[int] = mapped_column(Integer, server_default="1")
    clock_suspect: Mapped[bool] = mapped_column(Boolean, server_default="false")
    max_clock_ahead_ms: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_sync_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SyncAppliedOp(Base):
    """The terminal result of one op, written with its effects; replays answer from here."""

    __tablename__ = "sync_applied_ops"

    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sync_clients.id", ondelete="CASCADE"), primary_key=True
    )
    op_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    client_seq: Mapped[int] = mapped_column(BigInteger)
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    conflict_id: Mapped[uuid.UUID | None]
    applied_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SyncConflict(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """Two edits of one field that the server would not merge silently."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (
        UniqueConstraint("op_id", "field"),
        Index("ix_sync_conflicts_open", "organisation_id", "status"),
    )

    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[uuid.UUID]
    field: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # CLINICAL_MANUAL | LWW_REVIEW
    status: Mapped[str] = mapped_column(String(16))  # OPEN | RESOLVED | SUPERSEDED
    base_version: Mapped[int | None]
    server_version: Mapped[int | None]
    server_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    server_changed_by: Mapped[str | None] = mapped_column(String(200))
    server_changed_at: Mapped[datetime | None]
    client_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    client_changed_by: Mapped[str | None] = mapped_column(String(200))
    client_changed_at: Mapped[datetime | None]
    client_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    client_id: Mapped[uuid.UUID | None]
    op_id: Mapped[uuid.UUID | None]
    scope_keys: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default="{}"
    )
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolution_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    resolution_reason: Mapped[str | None] = mapped_column(Text)
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    # When it was closed: resolved by a person, or superseded by a later change of the field.
    resolved_at: Mapped[datetime | None]
    # The field's value as far as the conflict knows: while OPEN, what the field holds now (a
    # later change supersedes the conflict); then the value that superseded or resolved it.
    current_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    # For a sensitive field (a mobile number) the value columns above hold masked values and
    # this holds the true ones, encrypted (nidaan.sync.sealing).
    sealed_values: Mapped[str | None] = mapped_column(
        EncryptedString("sync_conflicts.sealed_values")
    )


class SyncFieldHistory(Base):
    """Every value that lost a last-writer-wins merge, or was overwritten by one."""

    __tablename__ = "sync_field_history"
    __table_args__ = (Index("ix_sync_field_history_row", "entity", "entity_id", "field"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[uuid.UUID]
    field: Mapped[str] = mapped_column(String(64))
    # Masked for a sensitive field (a mobile number); the true value is then in value_sealed.
    value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    value_sealed: Mapped[str | None] = mapped_column(EncryptedString("sync_field_history.value"))
    hlc: Mapped[str | None] = mapped_column(String(80))
    client_id: Mapped[uuid.UUID | None]
    op_id: Mapped[uuid.UUID | None]
    # "lost": an incoming value older than the stored one; "overwritten": the stored value
    # replaced by a newer incoming one.
    outcome: Mapped[str] = mapped_column(String(12))
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
