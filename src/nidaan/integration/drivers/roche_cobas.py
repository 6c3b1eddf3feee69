"""Roche cobas (c111, c311, e411, cobas 6000/8000 in ASTM mode).

* Message meaning is in H-11 (``RSUPL^REAL`` results, ``TSREQ^REAL`` host query); our replies
  carry ``TSDWN^REPLY`` (query answer) or ``TSDWN^BATCH`` (download).
* Test ids: ``^^^685/`` (c311/6000, ``/`` separates dilution), ``^^^10//not`` (e411 cobas
  type), ``^^^10^1`` (Elecsys type): the code is what precedes the first ``/``.
* Sample ids may come as ``@<seq>`` (barcode read error / unknown rack): such a result is
  *unidentified* (it goes to the exceptions queue with its sequence, rack and position and
  is never matched to a sample: in a lab whose accessions are plain numbers, ``@12`` read as
  ``12`` would land on another tube). In replies the id is echoed unchanged, with the
  sequence/rack/position of the query (O-4), which the analyzer requires.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

from nidaan.integration.astm.records import Header, Message, Order, OrderGroup, Query
from nidaan.integration.domain import InstrumentResult
from nidaan.integration.drivers.astm_generic import GenericASTMDriver
from nidaan.integration.drivers.base import OrderLine, register


class RocheCobasDriver(GenericASTMDriver):
    name: ClassVar[str] = "roche-cobas"
    sender: ClassVar[tuple[str, ...]] = ("host",)

    def message_type(self, message: Message) -> str:
        header = message.header
        if header is not None and header.message_type:
            return "^".join(c for c in header.comment if c)
        return super().message_type(message)

    def clean_code(self, test_id: Sequence[str]) -> str:
        return super().clean_code(test_id).split("/", 1)[0].strip()

    def results_of(self, group: OrderGroup, message: Message) -> list[InstrumentResult]:
        results = super().results_of(group, message)
        order = group.order
        sample_id = order.specimen_id.strip()
        if sample_id and not sample_id.startswith("@"):
            return results
        position = [*order.instrument_specimen_id[:3], "", "", ""]
        sequence, rack, place = (p.strip() or "?" for p in position[:3])
        reason = (
            f"the analyzer could not read the barcode (sample id {sample_id or 'empty'}): "
            f"sequence {sequence}, rack {rack}, position {place}"
        )
        return [
            dataclasses.replace(r, accession=sample_id or f"@{sequence}", unidentified=reason)
            for r in results
        ]

    def header(self, kind: str) -> Header:
        h = super().header(kind)
        h.comment = ("TSDWN", "REPLY" if kind == "reply" else "BATCH")
        h.version = "1"
        return h

    def test_id(self, line: OrderLine) -> tuple[str, ...]:
        return ("", "", "", line.instrument_code, "")

    def order_record(
        self,
        sample_id: str,
        orders: Sequence[OrderLine],
        *,
        report_type: str,
        query: Query | None = None,
    ) -> Order:
        order = super().order_record(sample_id, orders, report_type=report_type, query=query)
        if query is not None and len(query.starting_range) > 2:
            # Echo sequence^rack^position^...^sample type^container unchanged.
            order.instrument_specimen_id = tuple(query.starting_range[2:])
        order.action_code = "A" if orders else ""
        return order


driver = register(RocheCobasDriver())
