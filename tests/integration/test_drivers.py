"""Vendor drivers: realistic messages (shapes from the research notes) to InstrumentMessage,
and the replies the host sends (host-query answers, order downloads)."""

from __future__ import annotations

from datetime import datetime

import pytest

from nidaan.integration.astm.records import parse_message
from nidaan.integration.drivers.base import OrderLine, driver_names, get_driver, parse_astm_ts
from nidaan.integration.hl7.errors import HL7ValidationError
from nidaan.integration.hl7.message import Message as HL7Message

COBAS_RESULTS = (
    "H|\\^&|||c311^1|||||host|RSUPL^REAL|P|1\r"
    "P|1|||||||U||||||^\r"
    "O|1|@0123|0^5001^1^^S1^SC|^^^685^\\^^^690^|R||20130617133000||||N||||1||||||||||F\r"
    "R|1|^^^685/|182|mg/dL||H||F||admin^^SYSTEM||20130617140000|c311\r"
    "C|1|I|0|I\r"
    "R|2|^^^690/|1.1|mg/dL||N||F||admin^^SYSTEM||20130617140100|c311\r"
    "L|1|N\r"
)
COBAS_QUERY = (
    "H|\\^&|||c311^1|||||host|TSREQ^REAL|P|1\rQ|1|^000004^40^0^5^^S1^SC||ALL||||||||O\rL|1|N\r"
)
ARCHITECT = (
    "H|\\^&|||ARCHITECT^9.45^F3452430028^H1P1O1R1C1Q1L1|||||||P|1|20250301101500\r"
    "P|1|||PID-77\r"
    "O|1|LAB-0001|LAB-0001^C12^3|^^^580^Anti-HBcII^UNDILUTED^P|R||||||||||||||||||||F\r"
    "R|1|^^^580^Anti-HBcII^UNDILUTED^P^47331M100^01344^^F|0.12|S/CO||||F||admin^admin||20250301101010|i1SR01\r"
    "R|2|^^^580^Anti-HBcII^UNDILUTED^P^47331M100^01344^^I|Nonreactive|||||F||admin^admin||20250301101010|i1SR01\r"
    "R|3|^^^580^Anti-HBcII^UNDILUTED^P^47331M100^01344^^P|1234|RLU|||||F||admin^admin||20250301101010|i1SR01\r"
    "O|2|LAB-0001|LAB-0001^C12^3|^^^16^TSH^UNDILUTED^P|R||||||||||||||||||||F\r"
    "R|1|^^^16^TSH^UNDILUTED^P^41131M100^02244^^F|> 100.0000|uIU/mL|0.35 to 4.94|HIGH^EDIT||F"
    "||admin^admin||20250301101200|i1SR01\r"
    "R|2|^^^16^TSH^UNDILUTED^P^41131M100^02244^^P|998877|RLU|||||F||admin^admin||20250301101200|i1SR01\r"
    "L|1|N\r"
)
DXH_RESULTS = (
    "H|\\!~|||DxH 800!1.0|||||LIS||P|LIS2-A|20200101101010\r"
    "P|1\r"
    "O|1|123456||!!!CD|R||||||N||||Whole blood\r"
    "R|1|!!!WBC!33256-9|7.5|10*3/uL|4.0 to 11.0|N||F||||20200101101010\r"
    "R|2|!!!HGB!718-7|10.1|g/dL|12.0 to 16.0|L||F||||20200101101010\r"
    "L|1|N\r"
)
DXH_QUERY = "H|\\!~|||DxH 800|||||LIS||P|LIS2-A|20200101101010\rQ|1|!123456||ALL||||||||O\rL|1|N\r"
ORU = (
    "MSH|^~\\&|BS-240|LAB|NIDAAN|LAB|20261126101010||ORU^R01^ORU_R01|CTRL-1|P|2.5.1\r"
    "PID|1||MRN-1\r"
    "OBR|1|LAB-0009||GLU^Glucose|||20261126100000\r"
    "OBX|1|NM|GLU^Glucose||182|mg/dL|70-100|H~A|||F|||20261126100500\r"
    "OBX|2|NM|CREA^Creatinine||1.1|mg/dL|0.6-1.2|N|||F\r"
)
QRY = (
    "MSH|^~\\&|BS-240|LAB|NIDAAN|LAB|20261126101010||QRY^Q02|Q-1|P|2.3.1\r"
    "QRD|20261126101010|R|D|1|||RD|LAB-0009|OTH|||T\r"
    "QRF|BS-240|||||RCT|COR|ALL||\r"
)


def test_registry_knows_every_driver_enum() -> None:
    assert driver_names() == [
        "abbott-architect",
        "beckman-dxh",
        "generic-astm",
        "generic-hl7",
        "hospital-hl7",
        "roche-cobas",
    ]
    assert get_driver("roche-cobas").protocol == "astm"
    assert get_driver("generic-hl7").protocol == "hl7"
    with pytest.raises(LookupError):
        get_driver("sysmex-xn")


def test_astm_timestamps() -> None:
    assert parse_astm_ts("20130617140000") == datetime(2013, 6, 17, 14, 0)
    assert parse_astm_ts("201306171400") == datetime(2013, 6, 17, 14, 0)
    assert parse_astm_ts("") is None
    assert parse_astm_ts("2013xx") is None


def test_roche_results_strip_dilution_and_keep_at_sign() -> None:
    driver = get_driver("roche-cobas")
    message = driver.to_instrument_message(driver.parse(COBAS_RESULTS), COBAS_RESULTS)
    assert message.message_type == "RSUPL^REAL"
    assert message.dedupe_key
    assert message.dedupe_key.startswith("sha256:")
    glu, crea = message.results
    assert (glu.accession, glu.instrument_code, glu.value, glu.unit) == (
        "@0123",
        "685",
        "182",
        "mg/dL",
    )
    assert (glu.flags, glu.status) == (("H",), "F")
    assert glu.completed_at == datetime(2013, 6, 17, 14, 0)
    assert glu.raw_segment is not None
    assert glu.raw_segment.startswith("R|1|^^^685/|182")
    assert crea.instrument_code == "690"
    # Same records -> same key (a re-send is recognised); another message -> another key.
    again = driver.to_instrument_message(driver.parse(COBAS_RESULTS), COBAS_RESULTS)
    assert again.dedupe_key == message.dedupe_key
    other = COBAS_RESULTS.replace("|182|", "|183|")
    assert driver.to_instrument_message(driver.parse(other), other).dedupe_key != message.dedupe_key


def test_roche_host_query_answer_echoes_rack_position() -> None:
    driver = get_driver("roche-cobas")
    parsed = driver.parse(COBAS_QUERY)
    assert driver.queries(parsed) == ["000004"]
    assert driver.to_instrument_message(parsed, COBAS_QUERY).results == []
    reply = driver.answer_query("000004", [OrderLine("10"), OrderLine("20")], parsed)
    answer = parse_message(reply)
    assert answer.header is not None
    assert answer.header.comment == ("TSDWN", "REPLY")
    order = answer.patients()[0].orders[0].order
    assert order.specimen_id == "000004"
    assert order.instrument_specimen_id == ("40", "0", "5", "", "S1", "SC")
    assert [t[3] for t in order.tests] == ["10", "20"]
    assert order.report_type == "Q"
    none = parse_message(driver.answer_query("000004", None, parsed))
    assert none.patients()[0].orders[0].order.report_type == "Z"
    assert none.patients()[0].orders[0].order.tests == ()
    empty = parse_message(driver.answer_query("000004", [], parsed))
    assert empty.patients()[0].orders[0].order.report_type == "Y"


def test_architect_groups_the_result_triplet() -> None:
    driver = get_driver("abbott-architect")
    message = driver.to_instrument_message(driver.parse(ARCHITECT), ARCHITECT)
    hbc, tsh = message.results
    assert (hbc.accession, hbc.instrument_code, hbc.value, hbc.unit) == (
        "LAB-0001",
        "580",
        "0.12",
        "S/CO",
    )
    assert hbc.flags == ("Nonreactive",)
    assert hbc.raw_segment is not None
    assert "1234|RLU" in hbc.raw_segment
    assert (tsh.instrument_code, tsh.value, tsh.flags) == ("16", ">100.0000", ("HIGH", "EDIT"))
    assert "998877" in (tsh.raw_segment or "")


def test_dxh_reads_its_own_delimiters() -> None:
    driver = get_driver("beckman-dxh")
    message = driver.to_instrument_message(driver.parse(DXH_RESULTS), DXH_RESULTS)
    assert [(r.accession, r.instrument_code, r.value, r.flags) for r in message.results] == [
        ("123456", "WBC", "7.5", ("N",)),
        ("123456", "HGB", "10.1", ("L",)),
    ]
    parsed = driver.parse(DXH_QUERY)
    assert driver.queries(parsed) == ["123456"]
    reply = driver.answer_query("123456", [OrderLine("CD")], parsed)
    assert reply[0].startswith("H|\\!~|")
    assert reply[2].startswith("O|1|123456||!!!CD|R||||||N||||Whole blood")
    download = driver.order_download("123456", [OrderLine("CD")])
    assert download[2].endswith("|O")


def test_generic_astm_results_and_garbage() -> None:
    driver = get_driver("generic-astm")
    text = (
        "H|\\^&|||XL-640\rP|1\rO|1|S-1||^^^GLU|R\r"
        "R|1|^^^GLU|95|mg/dL|70-110|N||F||||20260101101010\rL|1|N\r"
    )
    [result] = driver.to_instrument_message(driver.parse(text), text).results
    assert (result.accession, result.instrument_code, result.value) == ("S-1", "GLU", "95")
    with pytest.raises(Exception):  # noqa: B017 - any parse error is "unreadable"
        driver.parse("garbage\rL|1|N\r")


def test_hl7_oru_to_results() -> None:
    driver = get_driver("generic-hl7")
    parsed = driver.parse(ORU)
    assert driver.kind(parsed) == "results"  # type: ignore[attr-defined]
    message = driver.to_instrument_message(parsed, ORU)
    assert (message.dedupe_key, message.message_type) == ("CTRL-1", "ORU^R01")
    glu, crea = message.results
    assert (glu.accession, glu.instrument_code, glu.value, glu.unit) == (
        "LAB-0009",
        "GLU",
        "182",
        "mg/dL",
    )
    assert (glu.flags, glu.status) == (("H", "A"), "F")
    assert glu.completed_at is not None
    assert crea.instrument_code == "CREA"


def test_hl7_query_answered_with_dsr() -> None:
    driver = get_driver("generic-hl7")
    parsed = driver.parse(QRY)
    assert driver.queries(parsed) == ["LAB-0009"]
    answer = driver.answer_query("LAB-0009", [OrderLine("GLU")], parsed)
    assert answer.message_type.startswith("DSR^Q03")
    assert answer.segment("MSA").get(2) == "Q-1"  # type: ignore[union-attr]
    assert answer.segment("QAK").get(2) == "OK"  # type: ignore[union-attr]
    none = driver.answer_query("LAB-0009", None, parsed)
    assert none.segment("QAK").get(2) == "NF"  # type: ignore[union-attr]
    assert isinstance(driver.order_download("LAB-0009", [OrderLine("GLU")]), HL7Message)


def test_hl7_unsupported_type_is_named() -> None:
    driver = get_driver("generic-hl7")
    adt = "MSH|^~\\&|A|B|C|D|20261126||ADT^A01|X1|P|2.5.1\rPID|1||M1\r"
    with pytest.raises(HL7ValidationError, match="ADT\\^A01"):
        driver.kind(driver.parse(adt))  # type: ignore[attr-defined]
