"""Events orders publishes (billing and notifications subscribe later)."""

from __future__ import annotations

import dataclasses
import uuid

from nidaan.events.base import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderCreated(DomainEvent):
    name = "orders.order_created"

    order_id: uuid.UUID
    patient_id: uuid.UUID
    branch_id: uuid.UUID


@dataclasses.dataclass(frozen=True, kw_only=True)
class SampleRejected(DomainEvent):
    name = "orders.sample_rejected"

    sample_id: uuid.UUID
    accession: str
    reason: str
    # The sample ordered to replace it; None when none of its tests was still wanted.
    recollection_id: uuid.UUID | None
