"""QBP^Q11 (IHE LAW LAB-27) from an HL7 analyzer, over real MLLP: RSP^K11 only acknowledges
the query; the work follows on the same connection as OML^O33 (LAB-28), and "no work" is an
OML with ORC-1 = DC. The analyzer's ORL^O34 gets no answer. (Issue 10: the RSP^K11 used to
carry the work order.) Also QRY^Q02: the DSR^Q03 carries the patient's demographics."""

from __future__ import annotations

import asyncio

from nidaan.integration.hl7.ack import build_ack
from nidaan.integration.hl7.message import Message
from nidaan.integration.hl7.mllp import Frame, MLLPDecoder, frame
from nidaan.integration.runtime import InterfaceSupervisor
from tests.integration.support import World


def qbp(sample: str, control: str) -> str:
    return (
        f"MSH|^~\\&|BS-240|LAB|NIDAAN|LAB|20261127101010||QBP^Q11^QBP_Q11|{control}|P|2.5.1\r"
        f"QPD|WOS^Work Order Step^IHE_LABTF|Q-{control}|{sample}\rRCP|I\r"
    )


async def exchange(port: int, message: str, replies: int) -> tuple[list[Message], bytes]:
    """Send one message and read ``replies`` messages back on the same connection; then
    answer the last with an ORL^O34-style ACK and return what came after (nothing)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    decoder = MLLPDecoder()
    got: list[Message] = []
    try:
        writer.write(frame(message))
        await writer.drain()
        while len(got) < replies:
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "connection closed early"
            got += [Message.parse(e.payload) for e in decoder.feed(data) if isinstance(e, Frame)]
        orl = str(build_ack(got[-1], "AA")).replace("ACK^O33^ACK", "ORL^O34^ORL_O34")
        writer.write(frame(orl))
        await writer.drain()
        try:
            extra = await asyncio.wait_for(reader.read(65536), 0.5)
        except TimeoutError:
            extra = b""
        return got, extra
    finally:
        writer.close()


async def test_qbp_q11_gets_rsp_k11_then_the_work_as_oml_o33(
    world: World, supervisor: InterfaceSupervisor
) -> None:
    port = supervisor.port_of(world.hl7.id)
    assert port is not None
    (rsp, oml), extra = await exchange(port, qbp(world.accession, "Q1"), 2)
    assert rsp.msh.get(9) == "RSP^K11^RSP_K11"
    msa, qak, qpd = rsp.segment("MSA"), rsp.segment("QAK"), rsp.segment("QPD")
    assert (msa.get(1), msa.get(2)) == ("AA", "Q1")  # type: ignore[union-attr]
    assert (qak.get(1), qak.get(2)) == ("Q-Q1", "OK")  # type: ignore[union-attr]
    assert qpd.get(3) == world.accession  # type: ignore[union-attr]
    assert [s.name for s in rsp] == ["MSH", "MSA", "QAK", "QPD"]  # no work in the RSP

    assert oml.msh.get(9) == "OML^O33^OML_O33"
    assert oml.segment("SPM").get(2, 1) == world.accession  # type: ignore[union-attr]
    assert [s.get(1) for s in oml.segments("ORC")] == ["NW"]
    assert [s.get(4, 1) for s in oml.segments("OBR")] == ["GLU"]
    pid = oml.segment("PID")
    assert pid is not None
    assert pid.get(3, 4) == "NIDAAN"  # our MRN, with us as the assigning authority
    assert extra == b""  # the ORL^O34 is not answered


async def test_no_work_is_an_oml_with_orc_1_dc(
    world: World, supervisor: InterfaceSupervisor
) -> None:
    port = supervisor.port_of(world.hl7.id)
    assert port is not None
    (rsp, oml), _ = await exchange(port, qbp("NO-SUCH-TUBE", "Q2"), 2)
    assert rsp.segment("QAK").get(2) == "NF"  # type: ignore[union-attr]
    assert [s.get(1) for s in oml.segments("ORC")] == ["DC"]
    assert oml.segments("OBR") == []
    assert oml.segment("SPM").get(2, 1) == "NO-SUCH-TUBE"  # type: ignore[union-attr]


async def test_dsr_q03_carries_the_patients_demographics(
    world: World, supervisor: InterfaceSupervisor
) -> None:
    port = supervisor.port_of(world.hl7.id)
    assert port is not None
    qry = (
        "MSH|^~\\&|BS-200|LAB|NIDAAN|LAB|20261127101010||QRY^Q02^QRY_Q02|QR1|P|2.3.1\r"
        f"QRD|20261127101010|R|D|QR1|||1^RD|{world.accession}|OTH\r"
    )
    (dsr,), _ = await exchange(port, qry, 1)
    assert dsr.message_type == "DSR^Q03"
    lines = {s.get(1): s.get(3) for s in dsr.segments("DSP")}
    assert lines["1"]  # patient id (our MRN)
    assert lines["3"]  # patient name
    assert lines["5"] in ("M", "F", "O")
    assert dsr.segments("ERR") == []  # no ERR|0 without ERR-3/ERR-4
