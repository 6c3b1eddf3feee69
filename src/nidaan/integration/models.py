"""Analyzer integration tables: instruments and their test maps, the raw message store and
the exceptions queue (results that could not be landed automatically)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin


class Instrument(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """An analyzer (or middleware) the lab talks to, and how."""

    __tablename__ = "instruments"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    driver: Mapped[str] = mapped_column(String(32))
    transport: Mapped[str] = mapped_column(String(16))
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    device: Mapped[str | None] = mapped_column(String(255))
    baudrate: Mapped[int | None] = mapped_column(Integer)
    # The lab (central lab branch) where the analyzer stands.
    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # Driver options (timers, delimiters, framing quirks); free-form per driver.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class InstrumentLinkHeartbeat(TenantMixin, Base):
    """The link state of an instrument as last reported by the process that runs it, so an
    API process elsewhere (production layout) can tell it; stale means unknown."""

    __tablename__ = "instrument_link_heartbeats"

    instrument_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("instruments.id", ondelete="CASCADE"), primary_key=True
    )
    connected: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(String(500))
    since: Mapped[datetime | None]
    next_retry_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime]


class InstrumentTestMap(IdMixin, TenantMixin, Base):
    """The analyzer's code for a catalogue test."""

    __tablename__ = "instrument_test_maps"
    __table_args__ = (UniqueConstraint("instrument_id", "instrument_code"),)

    instrument_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("instruments.id", ondelete="CASCADE")
    )
    instrument_code: Mapped[str] = mapped_column(String(64))
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"), index=True)


class InterfaceMessage(IdMixin, TenantMixin, Base):
    """Every message sent or received, as raw text, with what it led to."""

    __tablename__ = "interface_messages"
    __table_args__ = (
        # A re-sent message (same control id) is recognised; duplicates are stored too, so
        # the key is unique only among the first copies.
        Index(
            "uq_interface_messages_dedupe",
            "organisation_id",
            "instrument_id",
            "direction",
            "dedupe_key",
            unique=True,
            postgresql_where=text("dedupe_key IS NOT NULL AND status <> 'duplicate'"),
        ),
        Index("ix_interface_messages_instrument_received", "instrument_id", "received_at"),
    )

    # Empty for messages of endpoints that are not analyzers (hospital systems, later).
    instrument_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("instruments.id", ondelete="RESTRICT")
    )
    direction: Mapped[str] = mapped_column(String(8))
    protocol: Mapped[str] = mapped_column(String(8))
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    message_type: Mapped[str | None] = mapped_column(String(40))
    raw: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    duplicate_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("interface_messages.id"))
    # Ids of what the message created: {"results": [...], "exceptions": [...]}.
    links: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class InterfaceException(IdMixin, TenantMixin, TimestampMixin, Base):
    """A result from an instrument that could not be landed; a person decides."""

    __tablename__ = "interface_exceptions"
    __table_args__ = (Index("ix_interface_exceptions_org_status", "organisation_id", "status"),)

    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("interface_messages.id", ondelete="RESTRICT"), index=True
    )
    instrument_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("instruments.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(500))
    accession: Mapped[str | None] = mapped_column(String(64))
    instrument_code: Mapped[str | None] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(32))
    flags: Mapped[str | None] = mapped_column(String(100))
    instrument_status: Mapped[str | None] = mapped_column(String(8))
    completed_at: Mapped[datetime | None]
    raw_segment: Mapped[str | None] = mapped_column(Text)
    # What could be matched, to help the person resolving it.
    sample_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("samples.id"))
    test_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("catalog_tests.id"))
    order_test_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("order_tests.id"))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    resolution_note: Mapped[str | None] = mapped_column(String(500))
    resolved_by_kind: Mapped[str | None] = mapped_column(String(16))
    resolved_by_id: Mapped[uuid.UUID | None]
    resolved_by_label: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None]
    result_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("results.id"))


class ExternalPatientId(IdMixin, TenantMixin, TimestampMixin, Base):
    """A hospital's identifier (PID-3, e.g. its MRN) for one of our patients, per connection:
    how an ADT or order from that hospital finds the patient it registered before."""

    __tablename__ = "external_patient_ids"
    __table_args__ = (UniqueConstraint("instrument_id", "external_id"),)

    instrument_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("instruments.id", ondelete="RESTRICT")
    )
    external_id: Mapped[str] = mapped_column(String(64))
    assigning_authority: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)


class HospitalOrder(IdMixin, TenantMixin, TimestampMixin, Base):
    """An order placed by a hospital: its placer order number (ORC-2/OBR-2), kept to apply
    each hospital order once and to send the verified results back under it."""

    __tablename__ = "hospital_orders"
    __table_args__ = (UniqueConstraint("instrument_id", "placer_number"),)

    instrument_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("instruments.id", ondelete="RESTRICT")
    )
    placer_number: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("interface_messages.id"))
    # {"codes": {test id: hospital code}, "his": [MSH-3, MSH-4]}: how to answer the hospital.
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
