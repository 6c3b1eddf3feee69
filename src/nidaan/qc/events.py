"""Events quality control publishes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from nidaan.events.base import DomainEvent


@dataclass(frozen=True, kw_only=True)
class QcRunRejected(DomainEvent):
    """A QC run of an analyte on an instrument broke a rejection rule (alert at once)."""

    name = "qc.run_rejected"
    run_id: uuid.UUID
    instrument_id: uuid.UUID
    test_id: uuid.UUID
