"""Events the results module publishes (reports subscribes to ``ResultsVerified``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True, kw_only=True)
class ResultsEntered(DomainEvent):
    """Values were entered (or re-entered before verification) for these results; what
    decides about unverified results (autoverification) reacts to it."""

    name = "results.entered"
    result_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, kw_only=True)
class VerificationGateLifted(DomainEvent):
    """``holder``'s gate on an instrument and test was lifted: its results entered from
    ``since`` to ``lifted_at`` may be verified again (those held for a re-run excepted)."""

    name = "results.verification_gate_lifted"
    instrument_id: uuid.UUID
    test_id: uuid.UUID
    holder: str
    since: datetime
    lifted_at: datetime
