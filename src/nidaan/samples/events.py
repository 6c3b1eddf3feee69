"""Events samples publishes (integration subscribes: order download to batch analyzers)."""

from __future__ import annotations

import dataclasses
import uuid

from nidaan.events.base import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class SampleReceived(DomainEvent):
    name = "samples.sample_received"

    sample_id: uuid.UUID
    accession: str
    order_id: uuid.UUID
    # The central lab that received it.
    branch_id: uuid.UUID
