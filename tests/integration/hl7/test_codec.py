"""ER7 codec, validation, ACKs and extraction (pure, no database)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nidaan.integration.hl7 import (
    Coded,
    EncodingChars,
    HL7Order,
    HL7ParseError,
    HL7Patient,
    HL7Result,
    HL7ValidationError,
    HL7ValidationFailed,
    Message,
    Segment,
    build_ack,
    build_dsr_q03,
    build_msh,
    build_oml_o33,
    build_orm,
    build_oru,
    build_qck_q02,
    ensure_valid,
    extract_orders,
    extract_patient,
    extract_query,
    extract_results,
    validate,
)
from nidaan.integration.hl7.message import Repeated

# Mindray BS-series style result (HL7 2.3.1), per the research notes §3.4.
MINDRAY_ORU = (
    "MSH|^~\\&|BS-200|Mindray|||20120508094822||ORU^R01|1|P|2.3.1||||0||ASCII|||\r"
    "PID|1||||||0|||||0|||||||||||||||||||\r"
    "OBR|1|123456|3|Mindray^BS-200|N||20120508094600|||||||20120508094600|serum|||||\r"
    "OBX|1|NM|1|TBil|13.5|umol/L|5.1-17|N|||F||13.5|20120508094717|||0|\r"
    "OBX|2|NM|2|ALT|56|U/L|0-40|H~A|||F||56|20120508094717|||0|\r"
)

# v2.5.1 hospital-style ORU with ORC, LOINC codes, SN value and an equipment id.
HOSPITAL_ORU = (
    "MSH|^~\\&|LIS|LAB|HIS|HOSP|20240301101500+0530||ORU^R01^ORU_R01|MSG00001|P|2.5.1\r"
    "PID|1||MRN123^^^HOSP&1.2.3&ISO^MR~AAD999^^^UIDAI^NI||Sharma^Priya^K||19850214|F|||"
    "12 MG Road^^Pune^MH^411001^IND||^PRN^PH^^91^20^5551234\r"
    "PV1|1|O\r"
    "ORC|RE|ACC-1001|F-77\r"
    "OBR|1|ACC-1001|F-77|24331-1^Lipid panel^LN|||20240301083000\r"
    "OBX|1|NM|2093-3^Cholesterol^LN||212|mg/dL^mg/dL^UCUM|<200|H|||F|||20240301100000|||"
    "|AU680-1\r"
    "NTE|1||Fasting sample\r"
    "OBX|2|SN|2571-8^Triglyceride^LN||>^500|mg/dL|<150|HH|||F\r"
    "OBX|3|ST|13457-7^LDL comment^LN||see note \\T\\ \\F\\ text\\.br\\line2||||||F\r"
)


def test_parse_msh_numbering_and_properties() -> None:
    m = Message.parse(HOSPITAL_ORU)
    msh = m["MSH"]
    assert str(msh[1]) == "|"
    assert str(msh[2]) == "^~\\&"
    assert str(msh[3]) == "LIS"
    assert msh[9] == "ORU^R01^ORU_R01"
    assert msh[9][2] == "R01"
    assert m.message_type == "ORU^R01"
    assert m.control_id == "MSG00001"
    assert m.version == "2.5.1"
    assert len(m.segments("OBX")) == 3
    assert m["OBX"].get(3, 2) == "Cholesterol"
    assert m.segment("OBX", 3).get(5) == "see note & | text\nline2"
    assert str(m) == HOSPITAL_ORU


def test_parse_tolerates_lf_and_crlf_and_mllp_bytes() -> None:
    for sep in ("\n", "\r\n"):
        m = Message.parse(MINDRAY_ORU.replace("\r", sep))
        assert [s.name for s in m] == ["MSH", "PID", "OBR", "OBX", "OBX"]
    assert Message.parse("\x0b" + MINDRAY_ORU + "\x1c\r").control_id == "1"
    assert Message.parse(MINDRAY_ORU.encode()).control_id == "1"


def test_non_default_encoding_characters() -> None:
    text = "MSH$%*#@$SND$$$$$$ORU%R01$42$P$2.5.1\rOBX$1$ST$X%Name$$a#S#b@c%d*e\r"
    m = Message.parse(text)
    assert m.enc == EncodingChars("$", "%", "*", "#", "@")
    assert m.message_type == "ORU^R01"
    assert m["OBX"].get(5, 1, 1) == "a%b"
    assert m["OBX"].get(5, 1, 2) == "c"
    assert m["OBX"].get(5, 2) == "d"
    assert m["OBX"].get(5, 1, repetition=2) == "e"
    assert str(m["MSH"][1]) == "$"
    assert str(m["MSH"][2]) == "%*#@"


def test_unescape_sequences() -> None:
    enc = EncodingChars()
    assert enc.unescape_text(r"a\F\b\S\c\T\d\R\e\E\f") == "a|b^c&d~e\\f"
    assert enc.unescape_text(r"x\X0D0A\y") == "x\r\ny"
    assert enc.unescape_text(r"\H\bold\N\ line\.br\two") == "bold line\ntwo"
    assert enc.unescape_text(r"keep \Zunknown\ as is") == r"keep \Zunknown\ as is"


def test_parse_rejects_non_hl7() -> None:
    with pytest.raises(HL7ParseError):
        Message.parse("hello world")
    with pytest.raises(HL7ParseError):
        Message.parse("MSH|^^~&|x")  # duplicate encoding characters


ENCODINGS = st.sampled_from(
    [
        EncodingChars(),
        EncodingChars("$", "%", "*", "#", "@"),
        EncodingChars("!", "`", ":", "?", ";"),
    ]
)
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
) | st.text(alphabet="|^~\\&$%*#@!`:?;\r\n\x0b\x1cab ", max_size=20)


@settings(max_examples=150, deadline=None)
@given(enc=ENCODINGS, values=st.lists(TEXT, min_size=1, max_size=5), lf=st.booleans())
def test_round_trip_arbitrary_text(enc: EncodingChars, values: list[str], lf: bool) -> None:
    msh = build_msh("ORU^R01^ORU_R01", control_id="C1", sending_application=values[0], enc=enc)
    seg = Segment.build(
        "OBX",
        {
            1: "1",
            3: (values[0], values[-1], ("sub1", values[0])),
            5: Repeated(*values),
            8: values[-1],
        },
        enc,
    )
    text = str(Message.build([msh, seg]))
    if lf:
        text = text.replace("\r", "\n")
    m = Message.parse(text)
    assert m.enc == enc
    assert m.control_id == "C1"
    assert m["MSH"].get(3) == values[0]
    obx = m["OBX"]
    assert obx.get(3, 1) == values[0]
    assert obx.get(3, 2) == values[-1]
    assert obx.get(3, 3, 2) == values[0]
    assert [obx.get(5, repetition=i) for i in range(1, len(values) + 1)] == values
    assert obx.get(8) == values[-1]


# -- validation ---------------------------------------------------------------------------


def test_valid_messages() -> None:
    assert validate(Message.parse(HOSPITAL_ORU)) == []
    assert validate(Message.parse(MINDRAY_ORU)) == []


def test_validation_names_segment_and_field() -> None:
    broken = HOSPITAL_ORU.replace("OBX|2|SN|2571-8^Triglyceride^LN|", "OBX|2|SN||")
    errors = validate(Message.parse(broken))
    assert [e.message for e in errors] == ["OBX[2]-3 is empty"]
    assert (errors[0].code, errors[0].segment, errors[0].field) == (101, "OBX[2]", 3)
    with pytest.raises(HL7ValidationFailed) as info:
        ensure_valid(Message.parse(broken))
    assert info.value.first.code == 101


def test_validation_required_msh_fields_and_types() -> None:
    m = Message.parse("MSH|^~\\&|A|B|C|D|2024||ORU^R01||P|\rOBR|1\rOBX|1|NM|X||abc||||||F\r")
    got = {(e.code, e.segment, e.field) for e in validate(m)}
    assert got == {(101, "MSH", 10), (101, "MSH", 12), (102, "OBX[1]", 5)}


def test_validation_structure() -> None:
    no_obr = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.5.1\rPID|1||X\rOBX|1|ST|X||v||||||F\r"
    errors = validate(Message.parse(no_obr))
    assert errors[0].code == 100
    assert errors[0].segment == "OBR"
    unsupported = validate(Message.parse("MSH|^~\\&|A|B|C|D|2024||XYZ^Q99|1|P|2.5\r"))
    assert unsupported[0].code == 200
    adt = "MSH|^~\\&|A|B|C|D|2024||ADT^A04|1|P|2.5\rEVN||2024\rPID|1||M1^^^H^MR||Rao^Asha\r"
    assert [(e.code, e.segment) for e in validate(Message.parse(adt))] == [(100, "PV1")]
    assert validate(Message.parse(adt + "PV1|1|O\rZPI|custom\r")) == []
    extra = validate(Message.parse(adt + "PV1|1|O\rPID|2\r"))
    assert [(e.code, e.segment) for e in extra if e.code == 100] == [(100, "PID[2]")]


# -- ACK -----------------------------------------------------------------------------------


def test_ack_accept() -> None:
    ack = build_ack(Message.parse(HOSPITAL_ORU))
    assert ack.message_type == "ACK^R01"
    assert ack["MSA"].get(1) == "AA"
    assert ack["MSA"].get(2) == "MSG00001"
    assert ack.control_id
    assert ack.control_id != "MSG00001"
    assert (ack["MSH"].get(3), ack["MSH"].get(5)) == ("HIS", "LIS")
    assert "ERR" not in ack
    assert validate(Message.parse(str(ack))) == []


def test_ack_error_with_err_segment() -> None:
    err = HL7ValidationError(101, "OBX[2]", 3, "is empty")
    ack = build_ack(HOSPITAL_ORU, "AE", error=err)
    assert ack["MSA"].get(1) == "AE"
    assert ack["MSA"].get(2) == "MSG00001"
    e = ack["ERR"]
    assert (e.get(2, 1), e.get(2, 2), e.get(2, 3)) == ("OBX", "2", "3")
    assert e.get(3, 1) == "101"
    assert e.get(8) == "OBX[2]-3 is empty"
    # v2.3.1 peers get ERR-1
    old = build_ack(MINDRAY_ORU, "AE", error=err)
    assert old["ERR"].get(1, 4, 1) == "101"


def test_ack_for_broken_messages() -> None:
    only_msh = "MSH|^~\\&|DEV|F|LIS|L|2024||ORU^R01|X9|P|2.5\rOBX|broken\x00"
    ack = build_ack(only_msh.encode(), "AE", error=RuntimeError("boom"))
    assert ack["MSA"].get(2) == "X9"
    assert ack["ERR"].get(3, 1) == "207"
    garbage = build_ack(b"\x00\x01 not hl7", "AA")
    assert garbage["MSA"].get(1) == "AR"
    assert garbage["MSA"].get(2) == ""
    no_id = build_ack("MSH|^~\\&|A|B|C|D|2024||ORU^R01||P|2.5\r")
    assert (no_id["MSA"].get(1), no_id["MSA"].get(2)) == ("AR", "")


# -- extraction and builders ---------------------------------------------------------------


def test_extract_results_hospital() -> None:
    results = extract_results(Message.parse(HOSPITAL_ORU))
    assert len(results) == 3
    chol, tg, note = results
    assert chol.accession == "F-77"  # the filler number first
    assert (chol.placer_order_number, chol.filler_order_number) == ("ACC-1001", "F-77")
    assert chol.observation == Coded("2093-3", "Cholesterol", "LN")
    assert (chol.value, chol.units, chol.reference_range) == ("212", "mg/dL", "<200")
    assert chol.abnormal_flags == ("H",)
    assert chol.status == "F"
    assert chol.observed_at == datetime(2024, 3, 1, 10, 0)
    assert chol.producer == "AU680-1"
    assert tg.value == ">500"
    assert tg.observed_at == datetime(2024, 3, 1, 8, 30)
    assert note.value == "see note & | text\nline2"


def test_extract_results_mindray() -> None:
    results = extract_results(Message.parse(MINDRAY_ORU))
    assert [r.observation.code for r in results] == ["1", "2"]
    assert [r.sub_id for r in results] == ["TBil", "ALT"]
    assert results[1].abnormal_flags == ("H", "A")
    # BS-200: OBR-2 the barcode, OBR-3 its own sample number; the service decides.
    assert {(r.placer_order_number, r.filler_order_number) for r in results} == {("123456", "3")}


def test_extract_patient() -> None:
    p = extract_patient(Message.parse(HOSPITAL_ORU))
    assert p is not None
    assert (p.mrn, p.assigning_authority) == ("MRN123", "HOSP")
    assert (p.family_name, p.given_name) == ("Sharma", "Priya")
    assert p.dob == date(1985, 2, 14)
    assert p.sex == "female"
    assert p.phone == "+91205551234"
    assert len(p.identifiers) == 2


PATIENT = HL7Patient("M-1", "HOSP", "Rao", "Asha^&|", date(1990, 1, 2), "other", "+919876543210")


def test_oru_builder_round_trip() -> None:
    results = [
        HL7Result(
            accession="A1",
            observation=Coded("GLU", "Glucose", "L"),
            values=("5.4",),
            value_type="NM",
            set_id="1",
            units="mmol/L",
            reference_range="3.9-5.5",
            abnormal_flags=("N",),
            status="F",
            observed_at=datetime(2024, 1, 1, 9, 30),
            producer="BS-240",
            placer_order_number="A1",
            service=Coded("CHEM", "Chemistry", "L"),
        ),
        HL7Result(
            accession="A1",
            observation=Coded("CMT", "Comment", "L"),
            values=("a|b^c", "line2"),
            value_type="TX",
            set_id="2",
            status="F",
            placer_order_number="A1",
            service=Coded("CHEM", "Chemistry", "L"),
        ),
    ]
    msg = build_oru(results, patient=PATIENT, sender=("NIDAAN", "LAB"), receiver=("HIS", "H"))
    parsed = Message.parse(str(msg))
    assert validate(parsed) == []
    # OBR-7 (required in results) is filled, so an OBX without OBX-14 reads its time.
    assert extract_results(parsed) == [
        results[0],
        dataclasses.replace(results[1], observed_at=results[0].observed_at),
    ]
    assert extract_patient(parsed) == HL7Patient(
        "M-1",
        "HOSP",
        "Rao",
        "Asha^&|",
        date(1990, 1, 2),
        "other",
        "+919876543210",
        extract_patient(parsed).identifiers,  # type: ignore[union-attr]
    )


def test_orm_and_oml_round_trip() -> None:
    orders = [
        HL7Order("S-1", Coded("GLU", "Glucose", "L"), priority="S"),
        HL7Order("S-1", Coded("UREA", "Urea", "L"), priority="R"),
    ]
    orm = Message.parse(str(build_orm(orders, patient=PATIENT)))
    assert validate(orm) == []
    got = extract_orders(orm)
    assert [(o.accession, o.service.code, o.priority, o.order_control) for o in got] == [
        ("S-1", "GLU", "S", "NW"),
        ("S-1", "UREA", "R", "NW"),
    ]
    assert got[0].patient is not None
    assert got[0].patient.mrn == "M-1"
    oml = Message.parse(str(build_oml_o33("S-1", orders, patient=PATIENT)))
    assert validate(oml) == []
    got = extract_orders(oml)
    assert [(o.specimen_id, o.service.code, o.priority) for o in got] == [
        ("S-1", "GLU", "S"),
        ("S-1", "UREA", "R"),
    ]
    assert got[0].specimen_type.code == "BLD"


def test_query_and_dsr() -> None:
    qry = Message.parse(
        "MSH|^~\\&|BS-200|Mindray|||20120508094822||QRY^Q02|7|P|2.3.1||||||ASCII|||\r"
        "QRD|20120508094822|R|D|1|||RD|SAMPLE42|OTH|||T|\r"
        "QRF||||||RCT|COR|ALL||\r"
    )
    assert validate(qry) == []
    assert extract_query(qry) == "SAMPLE42"
    qck = build_qck_q02(qry, found=True)
    assert (qck["MSA"].get(2), qck["QAK"].get(2)) == ("7", "OK")
    dsr = build_dsr_q03(qry, [HL7Order("SAMPLE42", Coded("1", "ALT"))], patient=PATIENT)
    assert validate(Message.parse(str(dsr))) == []
    assert dsr["MSA"].get(2) == "7"
    dsp = {s.get(1): s for s in dsr.segments("DSP")}
    assert dsp["21"].get(3) == "SAMPLE42"
    assert dsp["29"].get(3, 1) == "1"
    none = build_dsr_q03(qry, [])
    assert none["QAK"].get(2) == "NF"
    assert validate(Message.parse(str(none))) == []
    qbp = Message.parse(
        "MSH|^~\\&|A|B|C|D|2024||QBP^Q11^QBP_Q11|1|P|2.5.1\r"
        "QPD|WOS^Work Order Step^IHE_LABTF|Q1|SID77\rRCP|I\r"
    )
    assert validate(qbp) == []
    assert extract_query(qbp) == "SID77"
    with pytest.raises(HL7ValidationError):
        extract_query(Message.parse("MSH|^~\\&|A|B|C|D|2024||QRY^Q02|1|P|2.5\rQRD|x\r"))
