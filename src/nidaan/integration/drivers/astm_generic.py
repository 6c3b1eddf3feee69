"""Generic ASTM E1394 / LIS2-A2 driver: R records to results, Q records answered with O records.

Works for analyzers that follow the standard closely (Erba, Mindray ASTM mode, Sysmex, ...);
vendor drivers subclass it and override the hooks (test-id cleaning, result grouping, the
reply's header and test-id layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar, Literal

from nidaan.integration.astm.errors import RecordSyntaxError
from nidaan.integration.astm.records import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Header,
    Message,
    Order,
    OrderGroup,
    Patient,
    Query,
    Terminator,
    parse_message,
)
from nidaan.integration.domain import InstrumentMessage, InstrumentResult
from nidaan.integration.drivers.base import OrderLine, content_hash, parse_astm_ts, register


class GenericASTMDriver:
    name: ClassVar[str] = "generic-astm"
    protocol: ClassVar[Literal["hl7", "astm"]] = "astm"
    accepts_order_downloads: ClassVar[bool] = True
    #: Delimiters of the messages we send (the analyzer's are read from its H record).
    delimiters: ClassVar[Delimiters] = DEFAULT_DELIMITERS
    sender: ClassVar[tuple[str, ...]] = ("NIDAAN",)

    # --- inbound ---------------------------------------------------------------------

    def parse(self, raw: str | Sequence[str]) -> Message:
        message = parse_message(raw)
        if not message.records or message.records[0].type.upper() != "H":
            raise RecordSyntaxError("an ASTM message must start with an H record")
        return message

    def message_type(self, message: Message) -> str:
        kinds = {r.type.upper() for r in message.records}
        if "R" in kinds:
            return "ASTM-R"
        if "Q" in kinds:
            return "ASTM-Q"
        if "O" in kinds:
            return "ASTM-O"
        return "ASTM"

    def dedupe_key(self, message: Message) -> str:
        return content_hash(message.serialise())

    def clean_code(self, test_id: Sequence[str]) -> str:
        """The analyzer's test code from a universal test id (``^^^GLU`` -> ``GLU``)."""
        if len(test_id) > 3 and test_id[3].strip():
            return test_id[3].strip()
        return next((c.strip() for c in test_id if c.strip()), "")

    def accession(self, group: OrderGroup) -> str:
        order = group.order
        if order.specimen_id.strip():
            return order.specimen_id.strip()
        return order.instrument_specimen_id[0].strip() if order.instrument_specimen_id else ""

    def clean_value(self, value: str) -> str:
        value = value.strip()
        # "> 15000.00" (comparator, space, number) is stored as ">15000.00".
        for comparator in ("<=", ">=", "<", ">"):
            if value.startswith(comparator):
                return comparator + value[len(comparator) :].strip()
        return value

    def is_control(self, group: OrderGroup, message: Message) -> bool:
        """Quality control: the whole message is QC (H-12 processing id ``Q``) or the order
        says "treat as QC" (O-12 action code ``Q``)."""
        header = message.header
        if header is not None and header.processing_id.strip().upper() == "Q":
            return True
        return group.order.action_code.strip().upper() == "Q"

    def results_of(self, group: OrderGroup, message: Message) -> list[InstrumentResult]:
        accession = self.accession(group)
        control = self.is_control(group, message)
        out = []
        for rg in group.results:
            r = rg.result
            out.append(
                InstrumentResult(
                    accession=accession,
                    instrument_code=self.clean_code(r.test_id),
                    value=self.clean_value(r.value),
                    unit=r.units.strip() or None,
                    flags=tuple(f.strip() for f in r.flags if f.strip()),
                    status=r.status.strip() or None,
                    completed_at=parse_astm_ts(r.completed_at),
                    raw_segment=r.to_record().encode(message.delimiters),
                    control=control,
                )
            )
        return out

    def to_instrument_message(self, parsed: Message, raw: str) -> InstrumentMessage:
        results: list[InstrumentResult] = []
        for pg in parsed.patients():
            for og in pg.orders:
                results.extend(self.results_of(og, parsed))
        return InstrumentMessage(
            dedupe_key=self.dedupe_key(parsed),
            message_type=self.message_type(parsed),
            results=results,
            raw=raw,
        )

    def queries(self, parsed: Message) -> list[str]:
        return [q.sample_id.strip() for q in parsed.queries if q.sample_id.strip()]

    def query_of(self, parsed: Message | None, sample_id: str) -> Query | None:
        if parsed is None:
            return None
        return next((q for q in parsed.queries if q.sample_id.strip() == sample_id), None)

    # --- outbound --------------------------------------------------------------------

    def header(self, kind: str) -> Header:
        """``kind``: "reply" (host-query answer) or "download" (unsolicited orders)."""
        return Header(
            delimiters=self.delimiters,
            sender=self.sender,
            processing_id="P",
            version="LIS2-A2",
            timestamp=datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
        )

    def test_id(self, line: OrderLine) -> tuple[str, ...]:
        return ("", "", "", line.instrument_code)

    def order_record(
        self,
        sample_id: str,
        orders: Sequence[OrderLine],
        *,
        report_type: str,
        query: Query | None = None,
    ) -> Order:
        return Order(
            sequence=1,
            specimen_id=sample_id,
            tests=tuple(self.test_id(line) for line in orders),
            priority=next((o.priority for o in orders if o.priority == "S"), "R") if orders else "",
            action_code="N" if orders else "",
            report_type=report_type,
        )

    def answer_query(
        self, sample_id: str, orders: Sequence[OrderLine] | None, parsed: Message | None = None
    ) -> list[str]:
        """``H P O L`` with the ordered tests (O-26 ``Q``); unknown sample: O-26 ``Z``,
        nothing for this analyzer: O-26 ``Y`` (both "no order")."""
        query = self.query_of(parsed, sample_id)
        report_type = "Q" if orders else ("Z" if orders is None else "Y")
        return Message.build(
            self.header("reply"),
            Patient(sequence=1),
            self.order_record(sample_id, orders or [], report_type=report_type, query=query),
            Terminator(code="N"),
            delimiters=self.delimiters,
        ).serialise()

    def order_download(self, sample_id: str, orders: Sequence[OrderLine]) -> list[str]:
        return Message.build(
            self.header("download"),
            Patient(sequence=1),
            self.order_record(sample_id, orders, report_type="O"),
            Terminator(code="N"),
            delimiters=self.delimiters,
        ).serialise()


driver = register(GenericASTMDriver())
