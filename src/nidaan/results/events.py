"""Events the results module publishes (reports subscribes to ``ResultsVerified``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from nidaan.events.base import DomainEvent


@dataclass(frozen=True, kw_only=True)
class ResultsVerified(DomainEvent):
    """Every active test of an order's ``department`` (or, with None, of the whole order)
    now has a verified current result.

    ``amended`` is True when the verification that completed it was of a correction;
    ``reason`` is then the correction's reason.
    """

    name = "results.verified"
    order_id: uuid.UUID
    department: str | None
    amended: bool = False
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class CriticalValueDetected(DomainEvent):
    """A result crossed a critical limit; someone must phone it through (see the alert)."""

    name = "results.critical_value_detected"
    alert_id: uuid.UUID
    result_id: uuid.UUID
    patient_id: uuid.UUID
    test_id: uuid.UUID
    value: str
    flag: str
