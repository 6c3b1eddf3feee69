"""Events of the compliance module (notifications tells the lab's administrators)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from nidaan.events.base import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class BreachRecorded(DomainEvent):
    """A personal-data breach was entered in the register; its clocks are running."""

    name = "compliance.breach_recorded"

    breach_id: uuid.UUID
    title: str
    cert_in_due: datetime
    board_report_due: datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class RightsRequestEscalated(DomainEvent):
    """A data principal's request or grievance is unanswered 60 days in (due at 90)."""

    name = "compliance.request_escalated"

    request_id: uuid.UUID
    kind: str
    due_at: datetime
