"""Generic HL7 v2 driver (LAW 2.5.1 and the 2.3.1 dialects of Mindray and similar).

* ORU^R01 / OUL^R22 -> results (a specimen whose SPM-11 role is ``Q`` is quality control,
  handed to QC, never matched to a patient): the sample by our accession in the filler
  number OBR-3/ORC-3, then SPM-2/SAC-3, the placer number OBR-2/ORC-2 only through a known
  mapping (the service decides; identifiers that disagree go to the exceptions queue); code
  OBX-3.1, value OBX-5 (SN joined; CE/CWE code, with its text kept), unit OBX-6, flags
  OBX-8, status OBX-11, time OBX-14.
* QRY^Q02 (QRD-8) / QBP^Q11 (QPD-3) -> the sample asked about; answered with DSR^Q03
  (``build_dsr_q03``, QAK-2 ``NF`` = no order), or, IHE LAW, RSP^K11 that only acknowledges
  the query followed by OML^O33 with the work (ORC-1 ``DC`` = no work); ORL^O34 comes back.
* Order download: ORM^O01.
The dedupe key is MSH-10 (the control id senders re-use when they re-send).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from nidaan.integration.domain import InstrumentMessage, InstrumentResult, SampleIds
from nidaan.integration.drivers.base import OrderLine, register
from nidaan.integration.hl7.builders import build_dsr_q03, build_orm
from nidaan.integration.hl7.errors import HL7ErrorCode, HL7ValidationError
from nidaan.integration.hl7.extract import (
    Coded,
    HL7Order,
    HL7Patient,
    extract_query,
    extract_results,
)
from nidaan.integration.hl7.message import Message, decode_payload
from nidaan.integration.hl7.rsp import build_law_answer

RESULT_MESSAGES = frozenset({"ORU^R01", "OUL^R22"})
QUERY_MESSAGES = frozenset({"QRY^Q02", "QBP^Q11"})


class GenericHL7Driver:
    name: ClassVar[str] = "generic-hl7"
    protocol: ClassVar[Literal["hl7", "astm"]] = "hl7"
    accepts_order_downloads: ClassVar[bool] = True

    def parse(self, raw: str | bytes | Sequence[str]) -> Message:
        if isinstance(raw, bytes):
            raw = decode_payload(raw)
        elif not isinstance(raw, str):
            raw = "\r".join(raw)
        return Message.parse(raw)

    def kind(self, msg: Message) -> str:
        """``results``, ``query`` or raises (unsupported message type, for an AR)."""
        code = f"{msg.message_code}^{msg.trigger_event}"
        if msg.message_code in ("ACK", "ORL"):
            return "ack"  # the analyzer's answer to what we sent (ORL^O34 to our OML^O33)
        if code in RESULT_MESSAGES:
            return "results"
        if code in QUERY_MESSAGES:
            return "query"
        raise HL7ValidationError(
            HL7ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            "MSH",
            9,
            f"{code} is not accepted here (send ORU^R01, OUL^R22 or QRY^Q02)",
        )

    def to_instrument_message(self, parsed: Message, raw: str) -> InstrumentMessage:
        results = []
        if f"{parsed.message_code}^{parsed.trigger_event}" in RESULT_MESSAGES:
            for r in extract_results(parsed):
                results.append(
                    InstrumentResult(
                        accession=r.accession,
                        instrument_code=r.observation.code.strip(),
                        value=r.value.strip(),
                        sample_ids=SampleIds(
                            r.filler_order_number.strip(),
                            tuple(i.strip() for i in r.specimen_ids if i.strip()),
                            r.placer_order_number.strip(),
                        ),
                        value_text=(r.coded_value.text.strip() or None)
                        if r.coded_value is not None
                        else None,
                        unit=r.units.strip() or None,
                        flags=tuple(f.strip() for f in r.abnormal_flags if f.strip()),
                        status=r.status.strip() or None,
                        completed_at=r.observed_at,
                        raw_segment=None,
                        # SPM-11 "Q": a control specimen (IHE LAW quality control).
                        control=r.specimen_role == "Q",
                    )
                )
        return InstrumentMessage(
            dedupe_key=parsed.control_id or None,
            message_type=f"{parsed.message_code}^{parsed.trigger_event}",
            results=results,
            raw=raw,
        )

    def queries(self, parsed: Message) -> list[str]:
        if f"{parsed.message_code}^{parsed.trigger_event}" not in QUERY_MESSAGES:
            return []
        return [extract_query(parsed)]

    def _orders(self, sample_id: str, orders: Sequence[OrderLine]) -> list[HL7Order]:
        # A placer order number per ordered test: the accession and the test's place.
        return [
            HL7Order(
                accession=sample_id,
                service=Coded(line.instrument_code, line.name),
                priority=line.priority,
                specimen_id=sample_id,
                placer_order_number=f"{sample_id}-{n}" if len(orders) > 1 else sample_id,
            )
            for n, line in enumerate(orders, start=1)
        ]

    def answer_query(
        self,
        sample_id: str,
        orders: Sequence[OrderLine] | None,
        parsed: Message | None = None,
        patient: HL7Patient | None = None,
    ) -> Message | list[Message]:
        """QRY^Q02 -> DSR^Q03 (with the patient's demographics); QBP^Q11 (IHE LAW LAB-27) ->
        RSP^K11 acknowledging the query, then OML^O33 with the work (LAB-28)."""
        if parsed is None:
            raise ValueError("an HL7 query answer needs the query message")
        if parsed.message_code == "QBP":
            return build_law_answer(
                parsed, sample_id, self._orders(sample_id, orders or []), patient=patient
            )
        return build_dsr_q03(parsed, self._orders(sample_id, orders or []), patient=patient)

    def order_download(self, sample_id: str, orders: Sequence[OrderLine]) -> Message:
        return build_orm(self._orders(sample_id, orders))


driver = register(GenericHL7Driver())
