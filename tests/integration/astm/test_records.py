"""E1394 records: delimiters per H record, escaping, typed views, message grouping."""

from __future__ import annotations

import pytest

from nidaan.integration.astm.errors import RecordSyntaxError
from nidaan.integration.astm.records import (
    Comment,
    Delimiters,
    Header,
    Manufacturer,
    Message,
    Order,
    Patient,
    Query,
    Record,
    Result,
    Terminator,
    escape,
    parse_message,
    parse_messages,
    parse_record,
    unescape,
)

# Record layouts follow the vendor manuals quoted in shared/specs/hl7-astm.md (§2, §3).
ROCHE_UPLOAD = "\r".join(
    [
        "H|\\^&|||c311^1|||||host|RSUPL^REAL|P|1",
        "P|1",
        "O|1|@17|0^50001^3^^S1^SC|^^^685/\\^^^690/|R||20230414105700||||N||||1||||||||||F",
        "R|1|^^^685/|> 15000.00|U/L||H\\>||F||BM^SYS||20230414105626|c311",
        "C|1|I|50^Below measuring range|I",
        "L|1|N",
    ]
)


def test_default_delimiters_and_roche_fields() -> None:
    m = parse_message(ROCHE_UPLOAD)
    assert m.delimiters == Delimiters()
    h = m.header
    assert h is not None
    assert (h.sender_name, h.sender_version, h.message_type) == ("c311", "1", "RSUPL")
    assert h.processing_id == "P"
    (group,) = m.patients()
    order = group.orders[0].order
    assert order.specimen_id == "@17"
    assert order.barcode_read_failed
    assert order.instrument_specimen_id == ("0", "50001", "3", "", "S1", "SC")
    assert order.test_codes == ("685/", "690/")
    assert order.report_type == "F"
    rg = group.orders[0].results[0]
    r = rg.result
    assert (r.test_code, r.value, r.units, r.status) == ("685/", "> 15000.00", "U/L", "F")
    assert r.flags == ("H", ">")
    assert r.operator == ("BM", "SYS")
    assert (r.completed_at, r.instrument) == ("20230414105626", "c311")
    assert rg.comments[0].text == ("50", "Below measuring range")
    assert m.terminator == Terminator(1, "N")


def test_abbott_test_id_and_flags() -> None:
    m = parse_message(
        "H|\\^&|||ARCHITECT^9.45^F3452430028^H1P1O1R1C1Q1L1|||||||P|1\r"
        "P|1\r"
        "O|1|S123|S123^A12^3|^^^580^Anti-HBcII^UNDILUTED^P|R||||||||||||||||||||F\r"
        "R|1|^^^580^Anti-HBcII^UNDILUTED^P^12345^678^^F|0.12|S/CO||LOW^EXP||F||ADMIN^ADMIN||"
        "20250101120000|i1SR01234\r"
        "L|1\r"
    )
    h = m.header
    assert h is not None
    assert h.sender == ("ARCHITECT", "9.45", "F3452430028", "H1P1O1R1C1Q1L1")
    o = m.patients()[0].orders[0]
    assert o.order.tests == (("", "", "", "580", "Anti-HBcII", "UNDILUTED", "P"),)
    r = o.results[0].result
    assert r.test_id[-1] == "F"  # result type: F final
    assert r.flags == ("LOW", "EXP")
    assert r.instrument == "i1SR01234"


@pytest.mark.parametrize(
    ("header", "delims"),
    [
        ("H|\\!~", Delimiters("|", "\\", "!", "~")),  # Beckman DxH
        ("H|@^\\", Delimiters("|", "@", "^", "\\")),  # GeneXpert
        ("H|`^&", Delimiters("|", "`", "^", "&")),  # Erba XL
        ("H;#:%", Delimiters(";", "#", ":", "%")),
    ],
)
def test_non_default_delimiters_round_trip(header: str, delims: Delimiters) -> None:
    tricky = "a|b\\c^d&e!f~g@h`i;j#k:l%m\x01\r\nend"
    m = Message.build(
        Header(delimiters=delims, sender=("DxH", "1.0")),
        Query(starting_range=("", "SID-1"), test_ids=("ALL",), request_status="O"),
        Order(specimen_id="SID-1", tests=(("", "", "", "CD"), ("", "", "", "WBC", tricky))),
        Result(test_id=("", "", "", "WBC", "33256-9"), value=tricky, units="10^3/uL"),
        Terminator(),
    )
    text = m.to_text()
    assert text.startswith(header + delims.field)
    assert "\x01" not in text
    assert "\n" not in text
    back = parse_message(text)
    assert back.delimiters == delims
    assert back.records == m.records
    assert back.queries[0].sample_id == "SID-1"
    assert back.of_type("R")[0].value == tricky  # type: ignore[union-attr]


def test_dxh_query_layout() -> None:
    m = parse_message("H|\\!~|||DxH|||||||P|LIS2-A\rQ|1|!SID42||ALL||||||||O\rL|1|N\r")
    q = m.queries[0]
    assert q.sample_id == "SID42"
    assert q.request_status == "O"


def test_escape_sequences() -> None:
    d = Delimiters()
    assert escape("a|b^c\\d&e", d) == "a&F&b&S&c&R&d&E&e"
    assert unescape("a&F&b&S&c&R&d&E&e", d) == "a|b^c\\d&e"
    assert escape("x\ry\x7f", d) == "x&X0D&y&X7F&"
    assert unescape("&X0D0A&", d) == "\r\n"
    # Highlighting, local escapes and lone escape characters are kept as received.
    assert unescape("&H&bold&N& A&B 5&", d) == "&H&bold&N& A&B 5&"


def test_typed_round_trip_keeps_unknown_fields() -> None:
    line = "P|1|PR1|LAB1|ID3|Sharma^Anita^K||19800101|F|||||Dr X||||170|60"
    p = Patient.from_record(parse_record(line))
    assert p.name == ("Sharma", "Anita", "K")
    assert p.sex == "F"
    assert p.birth_date == "19800101"
    assert p.to_record().encode() == line


def test_message_hierarchy_and_batches() -> None:
    one = Message.build(
        Header(comment=("TSDWN", "REPLY")),
        Patient(1, lab_id="L1"),
        Comment(1, "L", ("patient note",), "G"),
        Order(1, specimen_id="S1", tests=(("", "", "", "10"),), report_type="Q"),
        Order(2, specimen_id="S2"),
        Result(1, ("", "", "", "10"), "1.0"),
        Result(2, ("", "", "", "11"), "2.0"),
        Comment(1, "I", ("flag",), "I"),
        Manufacturer(1, {3: (("curve",),)}),
        Terminator(),
    )
    messages = parse_messages(one.to_text() + one.to_text().replace("\r", "\r\n"))
    assert len(messages) == 2
    for m in messages:
        assert m.records == one.records
        (pg,) = m.patients()
        assert [c.text for c in pg.comments] == [("patient note",)]
        assert [o.order.specimen_id for o in pg.orders] == ["S1", "S2"]
        assert [r.result.value for r in pg.orders[1].results] == ["1.0", "2.0"]
        assert pg.orders[1].results[1].comments[0].text == ("flag",)
    with pytest.raises(RecordSyntaxError):
        parse_message(one.to_text() * 2)


def test_bad_records() -> None:
    with pytest.raises(RecordSyntaxError):
        parse_record("H|||")  # duplicate delimiters
    with pytest.raises(RecordSyntaxError):
        parse_record("")
    with pytest.raises(RecordSyntaxError):
        Delimiters("|", "|", "^", "&")
    assert parse_record("L") == Record("L", ())
