"""Builders for the messages Nidaan sends: ORU^R01, ORM^O01, OML^O33, QCK^Q02, DSR^Q03."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from nidaan.integration.hl7.extract import Coded, HL7Order, HL7Patient, HL7Result
from nidaan.integration.hl7.message import (
    DEFAULT_ENCODING,
    EncodingChars,
    Message,
    Raw,
    Repeated,
    Segment,
    build_msh,
)

__all__ = [
    "Party",
    "build_dsr_q03",
    "build_oml_o33",
    "build_orm",
    "build_oru",
    "build_qck_q02",
    "pid_segment",
]

_SEX_TO_HL7: Final = {"male": "M", "female": "F", "other": "O", "unknown": "U"}
_SN_RE: Final = re.compile(r"^(<=|>=|<>|<|>|=)?\s*(.*)$")

#: (application, facility) of one end, e.g. ``("NIDAAN", "LAB01")``.
Party = tuple[str | None, str | None]


def _coded(c: Coded) -> tuple[str, str, str]:
    return (c.code, c.text, c.system)


def _msh(
    message_type: tuple[str, str, str],
    sender: Party,
    receiver: Party,
    control_id: str | None,
    version: str,
    enc: EncodingChars,
    timestamp: datetime | None,
    **extra: Any,
) -> Segment:
    return build_msh(
        message_type,
        control_id=control_id,
        sending_application=sender[0],
        sending_facility=sender[1],
        receiving_application=receiver[0],
        receiving_facility=receiver[1],
        version=version,
        timestamp=timestamp,
        enc=enc,
        **extra,
    )


def pid_segment(patient: HL7Patient, enc: EncodingChars = DEFAULT_ENCODING) -> Segment:
    """PID-3 MRN^^^authority&&^MR, PID-5 family^given, PID-7 DOB, PID-8 sex, PID-13 phone."""
    return Segment.build(
        "PID",
        {
            1: "1",
            3: (patient.mrn, "", "", (patient.assigning_authority,), "MR"),
            5: (patient.family_name, patient.given_name),
            7: patient.dob,
            8: _SEX_TO_HL7.get(patient.sex, "U"),
            13: patient.phone or None,
        },
        enc,
    )


def _obx_value(value_type: str, value: str, enc: EncodingChars) -> Any:
    if value_type == "SN":
        m = _SN_RE.match(value)
        assert m is not None
        return (m.group(1) or "", m.group(2))
    if value_type == "FT":
        # Formatted text: line breaks as the \.br\ escape, not as escaped bytes.
        lines = value.replace("\r\n", "\n").split("\n")
        return Raw(f"{enc.escape}.br{enc.escape}".join(enc.escape_text(line) for line in lines))
    return value


def _value_type(result: HL7Result) -> str:
    """ST is one line: text with line breaks goes as FT."""
    value_type = result.value_type or "ST"
    if value_type in ("ST", "TX") and any("\n" in v or "\r" in v for v in result.values):
        return "FT"
    return value_type


def _nte(n: int, text: str, enc: EncodingChars, comment_type: str | None = None) -> Segment:
    """NTE-1 set id, NTE-2 source (L: the lab), NTE-3 the comment (FT), NTE-4 its type."""
    return Segment.build(
        "NTE", {1: str(n), 2: "L", 3: _obx_value("FT", text, enc), 4: comment_type}, enc
    )


def build_oru(
    results: Sequence[HL7Result],
    *,
    patient: HL7Patient | None = None,
    sender: Party = ("NIDAAN", None),
    receiver: Party = (None, None),
    control_id: str | None = None,
    version: str = "2.5.1",
    enc: EncodingChars = DEFAULT_ENCODING,
    timestamp: datetime | None = None,
    order_control: str = "RE",
) -> Message:
    """ORU^R01 with one ORC/OBR group per (accession, service) and one OBX per result."""
    segments = [
        _msh(("ORU", "R01", "ORU_R01"), sender, receiver, control_id, version, enc, timestamp)
    ]
    if patient is not None:
        segments.append(pid_segment(patient, enc))
    groups: dict[tuple[str, str, str, Coded], list[HL7Result]] = {}
    for r in results:
        key = (r.accession, r.placer_order_number, r.filler_order_number, r.service)
        groups.setdefault(key, []).append(r)
    for n, ((accession, placer, filler, service), items) in enumerate(groups.items(), start=1):
        placer = placer or accession
        statuses = {r.status for r in items}
        collected = next((r.collected_at for r in items if r.collected_at), None)
        verified = max((r.verified_at for r in items if r.verified_at), default=None)
        segments.append(Segment.build("ORC", {1: order_control, 2: placer, 3: filler}, enc))
        segments.append(
            Segment.build(
                "OBR",
                {
                    1: str(n),
                    2: placer,
                    3: filler,
                    4: _coded(service),
                    # OBR-7: when the specimen was collected (required for results).
                    7: collected or next((r.observed_at for r in items if r.observed_at), None),
                    22: verified or (datetime.now(UTC) if timestamp is None else timestamp),
                    25: "C" if "C" in statuses else ("F" if statuses <= {"F"} else "P"),
                },
                enc,
            )
        )
        for i, r in enumerate(items, start=1):
            vt = _value_type(r)
            segments.append(
                Segment.build(
                    "OBX",
                    {
                        1: r.set_id or str(i),
                        2: vt,
                        3: _coded(r.observation),
                        4: r.sub_id or None,
                        5: Repeated(*(_obx_value(vt, v, enc) for v in r.values)),
                        6: (r.units,) if r.units else None,
                        7: r.reference_range or None,
                        8: Repeated(*r.abnormal_flags),
                        11: r.status or "F",
                        # OBX-14: the observation (specimen collection) time, not verification.
                        14: r.collected_at or r.observed_at,
                        18: r.producer or None,
                        19: r.verified_at,
                    },
                    enc,
                )
            )
            segments.extend(
                _nte(k, comment, enc) for k, comment in enumerate(r.comments, start=1) if comment
            )
    return Message.build(segments, enc)


def _order_segments(
    n: int, order: HL7Order, enc: EncodingChars, *, with_tq1: bool
) -> list[Segment]:
    placer = order.placer_order_number or order.accession
    segs = [
        Segment.build(
            "ORC",
            {
                1: order.order_control or "NW",
                2: placer,
                3: order.filler_order_number or None,
                12: order.ordering_provider or None,
            },
            enc,
        )
    ]
    if with_tq1 and order.priority:
        segs.append(Segment.build("TQ1", {1: "1", 9: order.priority}, enc))
    if not order.service.code:
        return segs  # ORC only: a cancel or LAW's "no work" (ORC-1 DC)
    obr: dict[int, Any] = {
        1: str(n),
        2: placer,
        3: order.filler_order_number or None,
        4: _coded(order.service),
        7: order.collected_at,
    }
    if not with_tq1:
        if order.specimen_type.code:
            obr[15] = ((order.specimen_type.code,),)
        if order.priority:
            obr[27] = ("", "", "", "", "", order.priority)
    segs.append(Segment.build("OBR", obr, enc))
    return segs


def build_orm(
    orders: Sequence[HL7Order],
    *,
    patient: HL7Patient | None = None,
    sender: Party = ("NIDAAN", None),
    receiver: Party = (None, None),
    control_id: str | None = None,
    version: str = "2.5.1",
    enc: EncodingChars = DEFAULT_ENCODING,
    timestamp: datetime | None = None,
) -> Message:
    """ORM^O01: MSH [PID] {ORC OBR} (one ORC/OBR pair per ordered test)."""
    segments = [
        _msh(("ORM", "O01", "ORM_O01"), sender, receiver, control_id, version, enc, timestamp)
    ]
    if patient is not None:
        segments.append(pid_segment(patient, enc))
    for n, order in enumerate(orders, start=1):
        segments.extend(_order_segments(n, order, enc, with_tq1=False))
    return Message.build(segments, enc)


def build_oml_o33(
    specimen_id: str,
    orders: Sequence[HL7Order],
    *,
    specimen_type: Coded = Coded("BLD", "Whole blood", "HL70487"),
    collected_at: datetime | None = None,
    patient: HL7Patient | None = None,
    sender: Party = ("NIDAAN", None),
    receiver: Party = (None, None),
    control_id: str | None = None,
    version: str = "2.5.1",
    enc: EncodingChars = DEFAULT_ENCODING,
    timestamp: datetime | None = None,
) -> Message:
    """OML^O33 (IHE LAW LAB-28 style): MSH [PID] SPM {ORC [TQ1] OBR}."""
    segments = [
        _msh(("OML", "O33", "OML_O33"), sender, receiver, control_id, version, enc, timestamp)
    ]
    if patient is not None:
        segments.append(pid_segment(patient, enc))
    segments.append(
        Segment.build(
            "SPM",
            {1: "1", 2: ((specimen_id,),), 4: _coded(specimen_type), 17: collected_at},
            enc,
        )
    )
    for n, order in enumerate(orders, start=1):
        segments.extend(_order_segments(n, order, enc, with_tq1=True))
    return Message.build(segments, enc)


def _query_reply_msh(
    query: Message, message_type: tuple[str, str, str], control_id: str | None
) -> Segment:
    msh = query.msh
    return build_msh(
        message_type,
        control_id=control_id,
        sending_application=Raw(msh.fields[5]) if msh.get(5) else None,
        sending_facility=Raw(msh.fields[6]) if msh.get(6) else None,
        receiving_application=Raw(msh.fields[3]) if msh.get(3) else None,
        receiving_facility=Raw(msh.fields[4]) if msh.get(4) else None,
        version=query.version or "2.3.1",
        charset=msh.get(18) or None,
        enc=query.enc,
    )


def build_qck_q02(query: Message, *, found: bool, control_id: str | None = None) -> Message:
    """QCK^Q02 (Mindray: immediate answer to QRY^Q02; QAK-2 ``OK`` or ``NF``). No ERR: an
    accepted query has no error to report (``ERR|0`` lacks the required ERR-3/ERR-4)."""
    enc = query.enc
    return Message.build(
        [
            _query_reply_msh(query, ("QCK", "Q02", "QCK_Q02"), control_id),
            Segment.build("MSA", {1: "AA", 2: Raw(query.msh.fields[10])}, enc),
            Segment.build("QAK", {1: "SR", 2: "OK" if found else "NF"}, enc),
        ],
        enc,
    )


#: Mindray BS-series DSR^Q03 DSP line numbers (DSP-1 set id, DSP-3 data). Verify per device.
DSP_PATIENT_ID: Final = 1
DSP_PATIENT_NAME: Final = 3
DSP_DOB: Final = 4
DSP_SEX: Final = 5
DSP_PHONE: Final = 10
DSP_BARCODE: Final = 21
DSP_SAMPLE_ID: Final = 22
DSP_SAMPLE_TIME: Final = 23
DSP_STAT: Final = 24
DSP_SAMPLE_TYPE: Final = 26
DSP_FIRST_TEST: Final = 29


def build_dsr_q03(
    query: Message,
    orders: Sequence[HL7Order],
    *,
    patient: HL7Patient | None = None,
    control_id: str | None = None,
) -> Message:
    """DSR^Q03 answering a QRY^Q02: the positional DSP layout of Mindray analysers.

    With no orders the reply says "no order": QAK-2 ``NF`` and a single empty DSP line.
    """
    enc = query.enc
    qrd = query.segment("QRD")
    qrf = query.segment("QRF")
    sample = qrd.get(8, 1) if qrd is not None else ""
    segments = [
        _query_reply_msh(query, ("DSR", "Q03", "DSR_Q03"), control_id),
        Segment.build("MSA", {1: "AA", 2: Raw(query.msh.fields[10])}, enc),
        Segment.build("QAK", {1: "SR", 2: "OK" if orders else "NF"}, enc),
    ]
    if qrd is not None:
        segments.append(Segment(qrd.name, list(qrd.fields), enc))
    if qrf is not None:
        segments.append(Segment(qrf.name, list(qrf.fields), enc))
    if not orders:
        segments.append(Segment.build("DSP", {1: "1"}, enc))
        return Message.build(segments, enc)
    lines: dict[int, Any] = {}
    if patient is not None:
        lines[DSP_PATIENT_ID] = patient.mrn
        lines[DSP_PATIENT_NAME] = " ".join(
            p for p in (patient.given_name, patient.family_name) if p
        )
        lines[DSP_DOB] = patient.dob
        lines[DSP_SEX] = {"male": "M", "female": "F"}.get(patient.sex, "O")
        lines[DSP_PHONE] = patient.phone
    first = orders[0]
    lines[DSP_BARCODE] = sample or first.accession
    lines[DSP_SAMPLE_ID] = first.specimen_id or first.accession
    lines[DSP_SAMPLE_TIME] = first.collected_at
    lines[DSP_STAT] = "Y" if any(o.priority == "S" for o in orders) else "N"
    lines[DSP_SAMPLE_TYPE] = first.specimen_type.code or "serum"
    last = DSP_FIRST_TEST + len(orders) - 1
    for n in range(1, last + 1):
        if n >= DSP_FIRST_TEST:
            order = orders[n - DSP_FIRST_TEST]
            value: Any = (order.service.code, order.service.text, "", "")
        else:
            value = lines.get(n)
        segments.append(Segment.build("DSP", {1: str(n), 3: value}, enc))
    return Message.build(segments, enc)
