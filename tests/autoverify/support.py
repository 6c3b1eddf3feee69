"""Helpers of the autoverification tests: deliver the events a test produced to their
subscribers inside the test's transaction (what ``events.deliver`` does in a job)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.autoverify.schemas import RuleSetIn
from nidaan.autoverify.service import autoverify_service
from nidaan.events.base import event_from_payload
from nidaan.events.models import OutboxEvent
from nidaan.events.registry import subscriptions_for
from tests.qc.support import Bench

#: The rules of the tests: a glucose validated for autoverification between 60 and 200.
GLUCOSE_RULES: list[dict[str, Any]] = [
    {"type": "source", "allowed": ["instrument"]},
    {"type": "reportable_range", "low": 2, "high": 750},
    {"type": "no_critical"},
    {"type": "autoverification_range", "low": 60, "high": 200},
    {"type": "delta", "percent": 40, "window_days": 90},
    {"type": "instrument_flags"},
    {"type": "qc", "max_age_hours": 24},
    {"type": "specimen_indices", "H": 200, "L": 500},
    {"type": "no_comment"},
]


async def deliver(
    session: AsyncSession, organisation_id: uuid.UUID, *, prefix: str = "autoverify."
) -> int:
    """Run the subscribers named ``prefix...`` for every event of the organisation not yet
    delivered in this test (in order, as the worker would); how many ran."""
    delivered: set[tuple[uuid.UUID, str]] = session.info.setdefault("delivered", set())
    ran = 0
    while True:
        rows = list(
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.organisation_id == organisation_id)
                .order_by(OutboxEvent.occurred_at, OutboxEvent.id)
            )
        )
        pending = [
            (row, sub)
            for row in rows
            for sub in subscriptions_for(type(event_from_payload(row.name, row.payload)))
            if sub.name.startswith(prefix) and (row.id, sub.name) not in delivered
        ]
        if not pending:
            return ran
        for row, sub in pending:
            delivered.add((row.id, sub.name))
            await sub.handler(session, event_from_payload(row.name, row.payload))
            ran += 1


async def glucose_rules(
    session: AsyncSession, bench: Bench, rules: list[dict[str, Any]] | None = None
) -> None:
    await autoverify_service.put_rule_set(
        session,
        bench.who("path"),
        bench.glucose.id,
        RuleSetIn(enabled=True, rules=rules or GLUCOSE_RULES, note="validated 2025-02"),
    )
