"""Events the integration module publishes (quality control subscribes to control results)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nidaan.events.base import DomainEvent


@dataclass(frozen=True, kw_only=True)
class ControlResultsReceived(DomainEvent):
    """An analyzer sent quality-control results (control samples, not patients).

    Each item of ``controls``: ``control_id`` (the sample id the analyzer sent),
    ``instrument_code``, ``test_id`` (through the instrument's test map, or None), ``value``,
    ``unit``, ``flags``, ``status``, ``completed_at`` (the analyzer's clock, ISO, naive),
    ``lot`` (a control lot the analyzer named, if any) and ``segment`` (the raw record).
    """

    name = "integration.control_results_received"
    instrument_id: uuid.UUID
    message_id: uuid.UUID
    received_at: datetime
    controls: tuple[dict[str, Any], ...]
