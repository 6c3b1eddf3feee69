"""RSP^K11: the answer to an analyzer's QBP^Q11 work-order query (IHE LAW LAB-27).

``MSH MSA QAK QPD`` and, when the specimen has orders, ``SPM {ORC TQ1 OBR}`` (the LAW
response carries the work order). ``QAK-2`` is ``OK`` with orders, ``NF`` without.
"""

from __future__ import annotations

from collections.abc import Sequence

from nidaan.integration.hl7.builders import _order_segments, _query_reply_msh
from nidaan.integration.hl7.extract import HL7Order
from nidaan.integration.hl7.message import Message, Raw, Segment

__all__ = ["build_rsp_k11"]


def build_rsp_k11(
    query: Message, orders: Sequence[HL7Order], *, control_id: str | None = None
) -> Message:
    enc = query.enc
    qpd = query.segment("QPD")
    segments = [
        _query_reply_msh(query, ("RSP", "K11", "RSP_K11"), control_id),
        Segment.build("MSA", {1: "AA", 2: Raw(query.msh.fields[10])}, enc),
        Segment.build(
            "QAK",
            {
                1: Raw(qpd.fields[2]) if qpd is not None and len(qpd.fields) > 2 else None,
                2: "OK" if orders else "NF",
                3: Raw(qpd.fields[1]) if qpd is not None and len(qpd.fields) > 1 else None,
            },
            enc,
        ),
    ]
    if qpd is not None:
        segments.append(Segment(qpd.name, list(qpd.fields), enc))
    if orders:
        specimen = orders[0].specimen_id or orders[0].accession
        segments.append(Segment.build("SPM", {1: "1", 2: ((specimen,),), 4: "SER"}, enc))
        for n, order in enumerate(orders, start=1):
            segments.extend(_order_segments(n, order, enc, with_tq1=True))
    return Message.build(segments, enc)
