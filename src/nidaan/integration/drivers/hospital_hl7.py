"""Hospital information systems (HIS) over HL7 v2 / MLLP.

A hospital is a connection like an analyzer ("instruments as data"), but what flows is
different: ADT^A01/A04/A08 (patients) and ORM^O01 / OML^O33 (orders) come in; verified
results go out as ORU^R01 under the hospital's placer order number. This driver is pure:
it classifies messages and builds the ORU; ``integration.hospital`` does the database work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from nidaan.integration.domain import InstrumentMessage
from nidaan.integration.drivers.base import register
from nidaan.integration.drivers.hl7_generic import GenericHL7Driver
from nidaan.integration.hl7.builders import Party, build_oru
from nidaan.integration.hl7.errors import HL7ErrorCode, HL7ValidationError
from nidaan.integration.hl7.extract import HL7Patient, HL7Result
from nidaan.integration.hl7.message import Message

PATIENT_MESSAGES = frozenset({"ADT^A01", "ADT^A04", "ADT^A08"})
ORDER_MESSAGES = frozenset({"ORM^O01", "OML^O33"})


def message_type(msg: Message) -> str:
    return f"{msg.message_code}^{msg.trigger_event}"


class HospitalHL7Driver(GenericHL7Driver):
    name: ClassVar[str] = "hospital-hl7"
    # A hospital sends us orders; the lab does not push orders back to it.
    accepts_order_downloads: ClassVar[bool] = False

    def kind(self, msg: Message) -> str:
        """``patient`` or ``order``; anything else raises (the runtime answers AR)."""
        code = message_type(msg)
        if code in PATIENT_MESSAGES:
            return "patient"
        if code in ORDER_MESSAGES:
            return "order"
        raise HL7ValidationError(
            HL7ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            "MSH",
            9,
            f"{code} is not accepted from a hospital (send ADT^A01/A04/A08, ORM^O01 or OML^O33)",
        )

    def to_instrument_message(self, parsed: Message, raw: str) -> InstrumentMessage:
        # Hospitals send no results; the dedupe key is MSH-10 as for analyzers.
        return InstrumentMessage(parsed.control_id or None, message_type(parsed), [], raw)

    def queries(self, parsed: Message) -> list[str]:
        return []

    def results_message(
        self,
        patient: HL7Patient,
        results: Sequence[HL7Result],
        *,
        sender: Party,
        receiver: Party,
    ) -> Message:
        """ORU^R01: PID with the hospital's identifier, one ORC/OBR per ordered code under
        the placer number (OBR-3: our order number), one OBX per verified result."""
        return build_oru(results, patient=patient, sender=sender, receiver=receiver)


driver = register(HospitalHL7Driver())
