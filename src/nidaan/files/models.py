"""File records: one row per stored version of a logical document."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin


class StoredFile(IdMixin, TenantMixin, Base):
    """One version of a document in the object store.

    Versions of one logical document share ``document_id``; a new upload for it adds
    version n + 1 and keeps the old ones. Deleting is soft (``deleted_at``); the purge job
    removes the object once ``purge_after`` has passed and records ``purged_at``.
    """

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("organisation_id", "purpose", "document_id", "version"),)

    purpose: Mapped[str] = mapped_column(String(24))
    document_id: Mapped[uuid.UUID] = mapped_column(index=True)
    version: Mapped[int] = mapped_column(Integer)
    is_current: Mapped[bool] = mapped_column(Boolean)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Random (the file id): says nothing about the patient or the content.
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patients.id"), index=True)
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id"), index=True)
    # What the file belongs to when it is not a plain upload, e.g. ("report", report id).
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    description: Mapped[str | None] = mapped_column(String(500))
    uploaded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
    deleted_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    delete_reason: Mapped[str | None] = mapped_column(String(500))
    purge_after: Mapped[datetime | None] = mapped_column(index=True)
    purged_at: Mapped[datetime | None]
    # A legal hold keeps a deleted file past its retention (medico-legal cases).
    legal_hold: Mapped[bool] = mapped_column(Boolean, server_default=false())
