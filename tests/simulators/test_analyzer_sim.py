"""The analyzer simulator against the real ASTM / MLLP transports over TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nidaan.integration.astm.protocol import LinkOptions, Timers
from nidaan.integration.astm.records import (
    Header,
    Message,
    Order,
    Patient,
    Terminator,
    parse_message,
)
from nidaan.integration.astm.transport import ASTMClient, ASTMServer
from nidaan.integration.hl7 import Message as HL7Message
from nidaan.integration.hl7 import build_ack, ensure_valid, extract_results
from nidaan.integration.hl7.mllp import MLLPServer
from nidaan.simulators import AnalyzerSimulator, Faults

FAST = Timers(ack=2.0, receive=1.0, busy=0.2, host_contention=0.2, instrument_contention=0.1)
RESULTS = [("685", "112", "mg/dL", "N"), ("767", "1.9", "mg/dL", "H")]


class Host:
    """An LIS-side ASTM server that records every transfer and can answer queries."""

    def __init__(self, answer: list[str] | None = None) -> None:
        self.received: asyncio.Queue[list[str]] = asyncio.Queue()
        self.answer = answer
        self.server = ASTMServer(
            "127.0.0.1", 0, self.on_message, LinkOptions(role="host", timers=FAST)
        )

    async def on_message(self, records: list[str], frames: list[bytes]) -> None:
        await self.received.put(records)
        if self.answer is not None and any(r.startswith("Q") for r in records):
            live = [lk for lk in self.server.links if not lk.closed]
            await live[0].send(self.answer)

    async def next(self, within: float = 3.0) -> list[str]:
        return await asyncio.wait_for(self.received.get(), within)


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    h = Host()
    await h.server.start()
    yield h
    await h.server.close()


def sim(driver: str, port: int, faults: Faults | None = None) -> AnalyzerSimulator:
    return AnalyzerSimulator(driver, "127.0.0.1", port, faults=faults, timers=FAST)


@pytest.mark.parametrize(
    "driver", ["roche-cobas", "abbott-architect", "beckman-dxh", "generic-astm"]
)
async def test_upload_records_arrive_unchanged(host: Host, driver: str) -> None:
    async with sim(driver, host.server.port) as s:
        report = await s.upload_results("CC1-20261126-0001", RESULTS)
        got = await host.next()
    assert got == report.records
    msg = parse_message(got)
    results = [r for g in msg.patients() for og in g.orders for r in og.results]
    order = msg.patients()[0].orders[0].order
    assert order.specimen_id == "CC1-20261126-0001"
    codes = [rg.result.test_code for rg in results]
    if driver == "roche-cobas":
        assert msg.header is not None
        assert msg.header.message_type == "RSUPL"
        assert codes == ["685/", "767/"]
        assert got[3].startswith("R|1|^^^685/|112|mg/dL")
    elif driver == "abbott-architect":
        assert len(results) == 6  # F, I, P per assay
        assert [rg.result.test_id[-1] for rg in results] == ["F", "I", "P"] * 2
        assert results[0].result.test_id[3:7] == ("685", "685", "UNDILUTED", "P")
        assert results[3].result.flags == ("H",)
    elif driver == "beckman-dxh":
        assert got[0].startswith("H|\\!~|")
        assert "!!!685!" in got[3]
        assert codes == ["685", "767"]
    else:
        assert codes == ["685", "767"]
        assert [rg.result.value for rg in results] == ["112", "1.9"]


async def test_roche_failed_barcode_read_gets_at_prefix(host: Host) -> None:
    async with sim("roche-cobas", host.server.port) as s:
        await s.upload_results("", RESULTS[:1])
        got = await host.next()
    order = parse_message(got).patients()[0].orders[0].order
    assert order.barcode_read_failed
    assert order.specimen_id == "@1"


async def test_bad_checksum_is_naked_and_retransmitted(host: Host) -> None:
    async with sim("generic-astm", host.server.port, Faults(bad_checksum_frame=2)) as s:
        report = await s.upload_results("ACC1", RESULTS)
        got = await host.next()
    assert got == report.records
    assert report.frames == len(report.records) + 1  # frame 2 was sent twice
    assert host.received.empty()


async def test_drop_mid_message_delivers_nothing_then_next_upload_works(host: Host) -> None:
    async with sim("roche-cobas", host.server.port, Faults(drop_frame=3)) as s:
        with pytest.raises((ConnectionError, Exception)):
            await s.upload_results("ACC-DROP", RESULTS)
        with pytest.raises(TimeoutError):
            await host.next(within=0.5)
        report = await s.upload_results("ACC-NEXT", RESULTS)
        got = await host.next()
    assert got == report.records
    assert parse_message(got).patients()[0].orders[0].order.specimen_id == "ACC-NEXT"


async def test_garbage_before_message_is_ignored(host: Host) -> None:
    async with sim("generic-astm", host.server.port, Faults(garbage=b"\x00\xffjunk\r\n")) as s:
        report = await s.upload_results("ACC-G", RESULTS)
        assert await host.next() == report.records


async def test_query_returns_host_answer_with_slow_acks() -> None:
    answer = Message.build(
        Header(comment=("TSDWN", "REPLY")),
        Patient(sequence=1),
        Order(
            sequence=1,
            specimen_id="ACC-Q",
            tests=(("", "", "", "685/"), ("", "", "", "767/")),
            report_type="Q",
        ),
        Terminator(),
    ).serialise()
    h = Host(answer=answer)
    await h.server.start()
    try:
        async with sim("roche-cobas", h.server.port, Faults(slow_ack=0.05)) as s:
            result = await s.query("ACC-Q")
        sent = await h.next()
    finally:
        await h.server.close()
    assert sent[1].startswith("Q|1|^ACC-Q^")
    assert result.error == ""
    assert result.replies == [answer]
    assert result.test_codes == ["685", "767"]


async def test_server_mode_lis_connects_and_receives() -> None:
    got: asyncio.Queue[list[str]] = asyncio.Queue()

    async def on_message(records: list[str], frames: list[bytes]) -> None:
        await got.put(records)

    s = AnalyzerSimulator("generic-astm", "127.0.0.1", 0, mode="server", timers=FAST)
    await s.start()
    client = ASTMClient(
        "127.0.0.1", s.port, on_message, LinkOptions(role="host", timers=FAST), backoff_initial=0.05
    )
    await client.start()
    try:
        report = await s.upload_results("ACC-S", RESULTS)
        assert await asyncio.wait_for(got.get(), 3) == report.records
    finally:
        await client.close()
        await s.close()


async def test_hl7_upload_gets_aa_ack() -> None:
    seen: list[Any] = []

    async def handler(raw: bytes, peer: Any) -> HL7Message:
        msg = ensure_valid(HL7Message.parse(raw))
        seen.append(extract_results(msg))
        return build_ack(msg, "AA")

    server = MLLPServer("127.0.0.1", 0, handler)
    await server.start()
    try:
        async with AnalyzerSimulator(
            "generic-hl7", "127.0.0.1", server.port, faults=Faults(garbage=b"xx")
        ) as s:
            report = await s.upload_results("ACC-H", RESULTS)
    finally:
        await server.close()
    assert report.ack == "AA"
    (results,) = seen
    assert [(r.accession, r.observation.code, r.value) for r in results] == [
        ("ACC-H", "685", "112"),
        ("ACC-H", "767", "1.9"),
    ]
    assert results[1].abnormal_flags == ("H",)
