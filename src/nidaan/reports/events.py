"""Events the reports module publishes (notifications and ABDM react to them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from nidaan.events.base import DomainEvent


@dataclass(frozen=True, kw_only=True)
class ReportFinalized(DomainEvent):
    """A signed PDF version of an order's report was issued (``amended``: it replaces one)."""

    name = "report.finalized"  # the name the product spec gives it
    order_id: uuid.UUID
    report_id: uuid.UUID
    report_version: int
    amended: bool
    # False while a release hold (e.g. an unpaid invoice) keeps it from the patient; deliver
    # on ``report.released`` instead, which follows when the last hold is lifted.
    released: bool = True


@dataclass(frozen=True, kw_only=True)
class ReportReleased(DomainEvent):
    """The order's current report may go to the patient: it was issued with no release hold,
    or the last hold on it (e.g. billing's "invoice unpaid") was lifted. Deliver on this."""

    name = "report.released"
    order_id: uuid.UUID
    report_id: uuid.UUID
    report_version: int


@dataclass(frozen=True, kw_only=True)
class ProvisionalReportRequested(DomainEvent):
    """A pathologist asked for a provisional report of an order whose tests are not all
    verified yet (rendered in the job, like every report)."""

    name = "report.provisional_requested"
    order_id: uuid.UUID
