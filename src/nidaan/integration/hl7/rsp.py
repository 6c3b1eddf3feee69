"""IHE LAW work-order query (LAB-27) and broadcast (LAB-28).

An analyzer asks with QBP^Q11; the answer is two messages: an RSP^K11 that only
acknowledges the query (``MSH MSA QAK QPD``, QAK-2 ``OK`` or ``NF``), then an OML^O33 (LAB-28,
AWOS broadcast) carrying the work: ``SPM {ORC [TQ1] OBR}``, or, when there is no work for the
specimen, a single ``ORC`` with ORC-1 ``DC`` (the LAW negative query response). The analyzer
answers the OML with ORL^O34.
"""

from __future__ import annotations

from collections.abc import Sequence

from nidaan.integration.hl7.builders import _query_reply_msh, build_oml_o33
from nidaan.integration.hl7.extract import Coded, HL7Order, HL7Patient
from nidaan.integration.hl7.message import Message, Raw, Segment

__all__ = ["build_law_answer", "build_rsp_k11"]


def build_rsp_k11(query: Message, *, found: bool, control_id: str | None = None) -> Message:
    """The acknowledgement of a QBP^Q11 (LAB-27): no work order in it."""
    enc = query.enc
    qpd = query.segment("QPD")
    segments = [
        _query_reply_msh(query, ("RSP", "K11", "RSP_K11"), control_id),
        Segment.build("MSA", {1: "AA", 2: Raw(query.msh.fields[10])}, enc),
        Segment.build(
            "QAK",
            {
                1: Raw(qpd.fields[2]) if qpd is not None and len(qpd.fields) > 2 else None,
                2: "OK" if found else "NF",
                3: Raw(qpd.fields[1]) if qpd is not None and len(qpd.fields) > 1 else None,
            },
            enc,
        ),
    ]
    if qpd is not None:
        segments.append(Segment(qpd.name, list(qpd.fields), enc))
    return Message.build(segments, enc)


def build_law_answer(
    query: Message,
    specimen_id: str,
    orders: Sequence[HL7Order],
    *,
    patient: HL7Patient | None = None,
) -> list[Message]:
    """[RSP^K11, OML^O33] for a QBP^Q11; the OML has ORC-1 ``DC`` when there is no work."""
    msh = query.msh
    work = list(orders) or [
        HL7Order(specimen_id, Coded(""), order_control="DC", placer_order_number=specimen_id)
    ]
    oml = build_oml_o33(
        specimen_id,
        work,
        patient=patient if orders else None,
        specimen_type=Coded("SER", "Serum", "HL70487"),
        sender=(msh.get(5) or "NIDAAN", msh.get(6) or None),
        receiver=(msh.get(3) or None, msh.get(4) or None),
        version=query.version or "2.5.1",
        enc=query.enc,
    )
    return [build_rsp_k11(query, found=bool(orders)), oml]
