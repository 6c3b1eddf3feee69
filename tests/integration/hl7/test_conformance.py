"""Every HL7 message type Nidaan sends, built by the product's own builders and validated by
an independent library (hl7apy, STRICT). Known hl7apy quirks are handled per point, never by
skipping a whole message:

* ORM^O01: hl7apy renders the ORDER_DETAIL choice group (OBR|RQD|RQ1|RXO|ODS|ODT, its
  "SUPPGRP") as a sequence and then demands RQD;
* OML^O33: hl7apy groups a second ORDER (ORC TQ1 OBR) under PRIOR_RESULT and then demands
  OBSERVATION_PRIOR.
  For these two grouping errors (and only these) every segment is still validated strictly.
* DSR^Q03: DSP-3 of the test lines (29 on) carries ``code^name^^`` as Mindray analyzers
  require, and positional lines without data leave DSP-3 empty; TX has one component and
  DSP-3 is required in the standard. That device dialect is validated without those lines.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import ValidationError
from hl7apy.parser import parse_message

from nidaan.integration.drivers.base import OrderLine, get_driver
from nidaan.integration.hl7 import Message, build_ack, build_oml_o33, build_orm, build_oru
from nidaan.integration.hl7.builders import build_dsr_q03, build_qck_q02
from nidaan.integration.hl7.extract import Coded, HL7Order, HL7Patient, HL7Result
from nidaan.integration.hl7.rsp import build_law_answer

HINDI = HL7Patient("M-1", "NIDAAN", "वर्मा", "आशा", date(1980, 4, 12), "female")
AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
QRY = Message.parse(
    "MSH|^~\\&|BS-200|LAB|NIDAAN|LAB|20261127||QRY^Q02^QRY_Q02|Q1|P|2.3.1\r"
    "QRD|20261127|R|D|Q1|||1^RD|CC1-0001|OTH|ALL\r"
)
QBP = Message.parse(
    "MSH|^~\\&|BS-240|LAB|NIDAAN|LAB|20261127||QBP^Q11^QBP_Q11|Q2|P|2.5.1\r"
    "QPD|WOS^Work Order Step^IHE_LABTF|Q-2|CC1-0001\rRCP|I\r"
)
ORDERS = [
    HL7Order("CC1-0001", Coded("GLU", "Glucose"), priority="S", placer_order_number="CC1-0001-1"),
    HL7Order("CC1-0001", Coded("CREA", "Creatinine"), placer_order_number="CC1-0001-2"),
]
RESULTS = [
    HL7Result(
        "P-1",
        Coded("GLU", "Glucose", "L"),
        ("126",),
        "NM",
        units="mg/dL",
        status="F",
        placer_order_number="P-1",
        filler_order_number="ORD-1-1",
        service=Coded("GLU", "Glucose", "L"),
        collected_at=AT,
        verified_at=AT,
        comments=("Fasting sample\nrepeat advised",),
    ),
    HL7Result(
        "P-1",
        Coded("CULT", "Culture", "L"),
        ("No growth\nafter 48 hours",),
        "ST",
        status="C",
        placer_order_number="P-1",
        filler_order_number="ORD-1-2",
        service=Coded("CULT", "Culture", "L"),
        comments=("Corrected: mislabelled plate",),
    ),
]


def outbound() -> dict[str, Message]:
    rsp, oml = build_law_answer(QBP, "CC1-0001", ORDERS, patient=HINDI)
    _, no_work = build_law_answer(QBP, "CC1-0001", [])
    return {
        "ORU^R01": build_oru(RESULTS, patient=HINDI),
        "ORM^O01": build_orm(ORDERS, patient=HINDI),
        "OML^O33": build_oml_o33("CC1-0001", ORDERS, patient=HINDI, collected_at=AT),
        "OML^O33 (LAW)": oml,
        "OML^O33 (no work)": no_work,
        "RSP^K11": rsp,
        "QCK^Q02": build_qck_q02(QRY, found=True),
        "DSR^Q03": build_dsr_q03(QRY, ORDERS, patient=HINDI),
        "ACK (AA)": build_ack(QBP, "AA"),
        "ACK (AE)": build_ack(QBP, "AE", error="not applied"),
        "ORM^O01 (driver download)": get_driver("generic-hl7").order_download(
            "CC1-0001", [OrderLine("GLU"), OrderLine("CREA")]
        ),
    }


def _hl7apy_grouping_quirk(error: ValidationError) -> bool:
    text = str(error)
    return ("SUPPGRP" in text and "RQD" in text) or "OBSERVATION_PRIOR" in text


def _segments(element: object) -> list[object]:
    children = list(getattr(element, "children", []))
    out: list[object] = []
    for child in children:
        if type(child).__name__ == "Segment":
            out.append(child)
        else:
            out += _segments(child)
    return out


@pytest.mark.parametrize("name", list(outbound()))
def test_every_outbound_message_passes_strict_validation(name: str) -> None:
    message = outbound()[name]
    text = str(message)
    if name.startswith("DSR"):
        kept = [
            line
            for line in text.split("\r")
            if not line.startswith("DSP|")
            or (int(line.split("|")[1]) < 29 and line.split("|")[3:4] not in ([], [""]))
        ]
        text = "\r".join(kept)
    parsed = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    try:
        parsed.validate()
    except ValidationError as error:
        if not _hl7apy_grouping_quirk(error):
            raise
        segments = _segments(parsed)
        assert len(segments) == len([line for line in text.split("\r") if line])
        for segment in segments:
            segment.validate()  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", list(outbound()))
def test_non_ascii_is_declared_in_msh_18(name: str) -> None:
    message = outbound()[name]
    if str(message).isascii():
        assert message.msh.get(18) in ("", "ASCII")
    else:
        assert message.msh.get(18) == "UNICODE UTF-8"


def test_points_the_strict_validator_does_not_check() -> None:
    messages = outbound()
    oru = messages["ORU^R01"]
    obr = oru.segment("OBR")
    assert obr is not None
    assert obr.get(7) == "20261127090000+0000"  # collection time
    assert len({s.get(3) for s in oru.segments("OBR")}) == 2  # a filler number per OBR
    culture = oru.segment("OBX", 2)
    assert culture is not None
    assert culture.get(2) == "FT"
    assert "\\.br\\" in culture.fields[5]
    assert [s.get(3) for s in oru.segments("NTE")] == [
        "Fasting sample\nrepeat advised",
        "Corrected: mislabelled plate",
    ]
    assert messages["ACK (AA)"].msh.get(9) == "ACK^Q11^ACK"
    bare = build_ack("MSH|^~\\&|A|B|C|D|20261127||ORU|X1|P|2.5.1\r")
    assert bare.msh.get(9) == "ACK^^ACK"
    assert messages["QCK^Q02"].segments("ERR") == []
    dsr = messages["DSR^Q03"]
    assert dsr.segments("ERR") == []
    assert {s.get(1): s.get(3) for s in dsr.segments("DSP")}["3"] == "आशा वर्मा"
