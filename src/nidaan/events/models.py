"""Outbox tables: every published event, and which subscriber has processed it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin


class OutboxEvent(IdMixin, TenantMixin, Base):
    """One published domain event, written in the publisher's transaction."""

    __tablename__ = "event_outbox"

    name: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Transaction time of the publishing transaction; pruning ages rows by it.
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    request_id: Mapped[str | None] = mapped_column(String(100))
    # Who the event was fanned out to, so "fully delivered" is answerable without
    # looking at the job queue (and pruning keeps anything not yet delivered).
    subscribers: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # When the outbox relay published the event to the broker (None: not yet, or no relay).
    relayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_event_outbox_unrelayed", "id", postgresql_where=text("relayed_at IS NULL")),
    )


class EventDelivery(IdMixin, Base):
    """Proof that ``subscriber`` handled ``event_id``; committed with the handler's effects."""

    __tablename__ = "event_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "subscriber"),)

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event_outbox.id", ondelete="CASCADE"))
    subscriber: Mapped[str] = mapped_column(Text)
    delivered_at: Mapped[datetime] = mapped_column(server_default=func.now())
