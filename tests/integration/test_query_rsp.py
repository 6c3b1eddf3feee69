"""QBP^Q11 (IHE LAW LAB-27) from an HL7 analyzer is answered with RSP^K11 carrying the work
order, over real MLLP (the BS-240 of ``test_runtime``'s world, GLU mapped as ``GLU``)."""

from __future__ import annotations

from nidaan.integration.hl7.message import Message
from nidaan.integration.hl7.mllp import MLLPClient
from nidaan.integration.runtime import InterfaceSupervisor
from tests.integration.support import World


def qbp(sample: str, control: str) -> str:
    return (
        f"MSH|^~\\&|BS-240|LAB|NIDAAN|LAB|20261127101010||QBP^Q11^QBP_Q11|{control}|P|2.5.1\r"
        f"QPD|WOS^Work Order Step^IHE_LABTF|Q-{control}|{sample}\rRCP|I\r"
    )


async def ask(supervisor: InterfaceSupervisor, world: World, sample: str, control: str) -> Message:
    port = supervisor.port_of(world.hl7.id)
    assert port is not None
    async with MLLPClient("127.0.0.1", port, ack_timeout=5, max_attempts=1) as client:
        return await client.send(qbp(sample, control))


async def test_qbp_q11_gets_rsp_k11_with_the_work_order_or_no_order(
    world: World,
    supervisor: InterfaceSupervisor,
) -> None:
    rsp = await ask(supervisor, world, world.accession, "Q1")
    assert f"{rsp.message_code}^{rsp.trigger_event}" == "RSP^K11"
    msa, qak, qpd = rsp.segment("MSA"), rsp.segment("QAK"), rsp.segment("QPD")
    assert msa is not None
    assert qak is not None
    assert qpd is not None
    assert (msa.get(1), msa.get(2)) == ("AA", "Q1")
    assert (qak.get(1), qak.get(2)) == ("Q-Q1", "OK")
    assert qpd.get(3) == world.accession
    spm = rsp.segment("SPM")
    assert spm is not None
    assert spm.get(2, 1) == world.accession
    assert [s.get(4, 1) for s in rsp.segments("OBR")] == ["GLU"]

    unknown = await ask(supervisor, world, "NO-SUCH-TUBE", "Q2")
    no_order = unknown.segment("QAK")
    assert no_order is not None
    assert no_order.get(2) == "NF"
    assert unknown.segments("OBR") == []
