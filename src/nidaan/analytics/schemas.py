"""Response shapes of the analytics API (all read-only)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import Field

from nidaan.kit.schemas import Schema


class StateCount(Schema):
    state: str = Field(examples=["received"])
    count: int


class WorkByState(Schema):
    day: date = Field(description="The India day counted (orders placed that day)")
    branch_id: uuid.UUID | None
    orders: int = Field(description="Orders placed that day")
    samples: list[StateCount] = Field(description="Their tubes by state")
    tests: list[StateCount] = Field(description="Their ordered tests by state")


class TatRow(Schema):
    department: str
    branch_id: uuid.UUID
    branch_code: str
    verified: int = Field(description="Tests verified in the window")
    within_target: int = Field(description="Verified within the test's TAT target")
    median_minutes: float | None = Field(description="Median receipt-to-verification minutes")
    p90_minutes: float | None
    target_minutes: float | None = Field(description="Median of the tests' TAT targets")
    overdue_open: int = Field(description="Tests still open and already past their target")


class TatReport(Schema):
    date_from: date
    date_to: date
    rows: list[TatRow]


class CriticalPending(Schema):
    open: int = Field(description="Critical values not yet phoned through")
    oldest_at: datetime | None
    oldest_minutes: float | None


class TransitRow(Schema):
    from_branch_id: uuid.UUID
    from_branch_code: str
    samples: int
    oldest_collected_at: datetime | None
    oldest_minutes: float | None


class InTransit(Schema):
    total: int
    rows: list[TransitRow]
