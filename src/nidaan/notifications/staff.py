"""Alerts to a lab's administrators by e-mail (security and DPDP duties): lock-outs,
breaches entered in the register, rights requests about to miss their 90 days.

Sent straight through the e-mail channel (not the patient message log): the text names no
patient, and a failed send raises so the event's delivery job is retried.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.auth.models import User
from nidaan.config import Settings, get_settings
from nidaan.notifications.channels.base import OutboundMessage
from nidaan.notifications.channels.registry import channel_for
from nidaan.notifications.enums import Channel, MessageKind

log = structlog.get_logger("nidaan.notifications")


async def admin_emails(session: AsyncSession, organisation_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        select(User.email)
        .where(
            User.organisation_id == organisation_id,
            User.is_active.is_(True),
            User.roles.any(Role.ADMIN.value),
        )
        .order_by(User.email)
    )
    return list(rows)


async def alert_admins(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    *,
    key: uuid.UUID,
    subject: str,
    text: str,
    settings: Settings | None = None,
) -> int:
    """E-mail every active administrator; returns how many were sent (0 when e-mail is
    not configured: the audit entry and the event remain the record)."""
    settings = settings or get_settings()
    channel = channel_for(Channel.EMAIL, settings)
    recipients = await admin_emails(session, organisation_id)
    if channel is None or not recipients:
        log.warning("staff_alert_not_sent", subject=subject, reason="no e-mail channel or admin")
        return 0
    for address in recipients:
        await channel.send(
            OutboundMessage(
                notification_id=uuid.uuid5(key, address),
                channel=Channel.EMAIL,
                kind=MessageKind.TEMPLATE,
                to=address,
                template="staff_alert",
                language="en",
                parameters=(),
                text=text,
                subject=subject,
            )
        )
    return len(recipients)
