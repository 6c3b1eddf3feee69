"""The receive journal: a complete ASTM message is on disk before its last frame is
acknowledged, noted when landed, and landed at the next start if it was not.

Real files (``tmp_path``), real sockets (an AF_UNIX socket pair and TCP on 127.0.0.1) and a
real PostgreSQL with committed data on a fresh organisation."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from nidaan.config import Settings
from nidaan.integration import runtime
from nidaan.integration.astm.framing import ACK, ENQ, EOT, NAK, build_frames
from nidaan.integration.astm.protocol import ASTMLink, LinkOptions, kept_tokens
from nidaan.integration.astm.transport import ASTMServer
from nidaan.integration.journal import (
    JournalBusy,
    JournalEntry,
    ReceiveJournal,
    journal_path,
    read_waiting,
)
from nidaan.integration.models import InterfaceMessage
from nidaan.integration.runtime import InterfaceSupervisor, _journal_name
from nidaan.kit.db import session_scope
from nidaan.results.models import Result
from nidaan.simulators import AnalyzerSimulator
from tests.integration.astm.test_protocol import FAST, RESULTS, Inbox
from tests.integration.support import World, eventually
from tests.integration.test_landing import ANALYZER_TIMERS

MESSAGE = [
    "H|\\^&|||c311^1|||||host|RSUPL^REAL|P|1",
    "P|1",
    "O|1|SID-1|0^50001^3^^S1^SC|^^^685/|R||||||N||||1||||||||||F",
    "R|1|^^^685/|28.6|U/L||N||F||BM^SYS||20230414105626|c311",
    "L|1|N",
]

# ---------------------------------------------------------------------- (a) the journal file


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[ReceiveJournal]:
    kept = ReceiveJournal()
    assert kept.open(journal_path(tmp_path, "unit")) == []
    yield kept
    await kept.close()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_journal_path_names_the_file_in_the_directory(tmp_path: Path) -> None:
    assert journal_path(tmp_path, "abc-0") == tmp_path / "received-abc-0.jsonl"


async def test_keep_puts_the_message_on_disk_and_landed_takes_it_off(
    journal: ReceiveJournal,
) -> None:
    assert journal.path is not None
    path = journal.path
    instrument = uuid.uuid4()
    first = await journal.keep(instrument, MESSAGE)
    second = await journal.keep(instrument, ["H|\\^&", "L|1|N"])
    assert first != second
    assert journal.waiting == 2
    # On disk when keep returns (read by another reader of the file, not the journal).
    assert read_waiting(path) == [
        JournalEntry(first, instrument, MESSAGE),
        JournalEntry(second, instrument, ["H|\\^&", "L|1|N"]),
    ]

    journal.landed(first)
    assert journal.waiting == 1
    # The done marker is written by the flusher: wait for it, then the file says so.
    marked = await eventually(
        lambda: _read(path), lambda entries: [e.id for e in entries] == [second]
    )
    assert [e.id for e in marked] == [second]
    assert {"done": first} in _lines(path)

    journal.landed(second)  # the last one waiting: the file starts afresh
    assert journal.waiting == 0
    assert path.read_bytes() == b""
    assert read_waiting(path) == []

    journal.landed(second)  # twice, or an unknown id: nothing happens
    journal.landed("no-such-entry")
    assert journal.waiting == 0
    assert path.read_bytes() == b""


async def _read(path: Path) -> list[JournalEntry]:
    return read_waiting(path)


async def test_reopening_returns_what_is_still_waiting(tmp_path: Path) -> None:
    path = journal_path(tmp_path, "reopen")
    instrument = uuid.uuid4()
    journal = ReceiveJournal()
    journal.open(path)
    landed = await journal.keep(instrument, ["H|1", "L|1|N"])
    waiting = await journal.keep(instrument, MESSAGE)
    journal.landed(landed)
    await journal.close()  # writes the landed note still buffered, then lets go

    again = ReceiveJournal()
    try:
        assert again.open(path) == [JournalEntry(waiting, instrument, MESSAGE)]
        assert again.waiting == 1
        again.landed(waiting)
        assert again.waiting == 0
        assert path.read_bytes() == b""
    finally:
        await again.close()
    # And a third run finds nothing.
    third = ReceiveJournal()
    try:
        assert third.open(path) == []
    finally:
        await third.close()


async def test_a_second_open_of_the_same_journal_is_refused(
    tmp_path: Path, journal: ReceiveJournal
) -> None:
    assert journal.path is not None
    entry = await journal.keep(uuid.uuid4(), MESSAGE)
    other = ReceiveJournal()
    with pytest.raises(JournalBusy):
        other.open(journal.path)
    # The refused open changed nothing: the holder still works and the entry is there.
    assert [e.id for e in read_waiting(journal.path)] == [entry]
    await journal.close()
    # Once closed (the lock released) another may open it and finds the entry.
    try:
        assert [e.id for e in other.open(journal.path)] == [entry]
    finally:
        await other.close()
    # A different name in the same directory is another journal, not busy.
    unrelated = ReceiveJournal()
    try:
        assert unrelated.open(journal_path(tmp_path, "other")) == []
    finally:
        await unrelated.close()


async def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = journal_path(tmp_path, "torn")
    instrument = uuid.uuid4()
    whole = {"id": "a" * 32, "instrument": str(instrument), "records": MESSAGE}
    torn = json.dumps({"id": "b" * 32, "instrument": str(instrument), "records": MESSAGE})
    path.write_bytes(json.dumps(whole).encode() + b"\n" + torn[: len(torn) // 2].encode())

    assert read_waiting(path) == [JournalEntry("a" * 32, instrument, MESSAGE)]
    journal = ReceiveJournal()
    try:
        assert journal.open(path) == [JournalEntry("a" * 32, instrument, MESSAGE)]
        assert journal.waiting == 1
    finally:
        await journal.close()


def test_read_waiting_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_waiting(tmp_path / "nothing-here.jsonl") == []


async def test_a_message_kept_after_a_torn_line_survives_the_next_crash(tmp_path: Path) -> None:
    path = journal_path(tmp_path, "torn-then-kept")
    instrument = uuid.uuid4()
    torn = json.dumps({"id": "b" * 32, "instrument": str(instrument), "records": MESSAGE})
    path.write_bytes(torn[: len(torn) // 2].encode())  # a crash in the middle of a write

    journal = ReceiveJournal()
    assert journal.open(path) == []
    kept = await journal.keep(instrument, MESSAGE)  # acknowledged to the analyzer next
    await journal.close()  # the next crash, before it landed

    assert read_waiting(path) == [JournalEntry(kept, instrument, MESSAGE)]


async def test_concurrent_keeps_get_distinct_ids_and_all_reach_the_file(
    journal: ReceiveJournal,
) -> None:
    assert journal.path is not None
    instruments = [uuid.uuid4() for _ in range(5)]
    messages = {
        n: (instruments[n % 5], [f"H|\\^&|||n{n}", f"R|1|^^^685/|{n}", "L|1|N"]) for n in range(50)
    }
    ids = await asyncio.gather(*(journal.keep(i, records) for i, records in messages.values()))
    assert len(set(ids)) == 50
    assert journal.waiting == 50
    on_disk = {e.id: (e.instrument_id, e.records) for e in read_waiting(journal.path)}
    assert on_disk == {entry_id: messages[n] for n, entry_id in enumerate(ids)}
    # Grouped: 50 lines, each one complete.
    assert len(_lines(journal.path)) == 50

    for entry_id in ids:
        journal.landed(entry_id)
    assert journal.waiting == 0
    await eventually(lambda: _read(journal.path), lambda entries: entries == [])  # type: ignore[arg-type]
    assert read_waiting(journal.path) == []


async def test_keep_after_close_fails_and_is_not_reported_kept(tmp_path: Path) -> None:
    journal = ReceiveJournal()
    journal.open(journal_path(tmp_path, "closed"))
    await journal.close()
    with pytest.raises(OSError, match="closed"):
        await journal.keep(uuid.uuid4(), MESSAGE)
    assert journal.waiting == 0  # refused, so nothing waits for it


def _swap_fd(journal: ReceiveJournal, device: int) -> int:
    """Point the journal's descriptor at ``device`` (a real full disk or pipe); returns a
    duplicate of the journal file's descriptor (it keeps the file and its lock) to restore."""
    fd = journal._fd
    assert fd is not None
    saved = os.dup(fd)
    os.dup2(device, fd)
    return saved


def _restore_fd(journal: ReceiveJournal, saved: int) -> None:
    assert journal._fd is not None
    os.dup2(saved, journal._fd)
    os.close(saved)


async def test_a_keep_that_fails_on_a_full_disk_is_not_counted_waiting(tmp_path: Path) -> None:
    path = journal_path(tmp_path, "full")
    journal = ReceiveJournal()
    journal.open(path)
    instrument = uuid.uuid4()
    full = os.open("/dev/full", os.O_WRONLY)
    saved = _swap_fd(journal, full)
    try:
        with pytest.raises(OSError) as failed:
            await journal.keep(instrument, MESSAGE)  # the link answers this frame NAK
        assert failed.value.errno == errno.ENOSPC
        assert journal.waiting == 0
    finally:
        _restore_fd(journal, saved)
        os.close(full)
    try:
        assert read_waiting(path) == []  # nothing of it reached the file
        # Room again: the analyzer's re-sent frame is kept, then its message lands.
        entry = await journal.keep(instrument, MESSAGE)
        assert [e.id for e in read_waiting(path)] == [entry]
        journal.landed(entry)
        assert await eventually(lambda: _read(path), lambda entries: entries == []) == []
        assert journal.waiting == 0
        await eventually(lambda: _size(path), lambda n: n == 0)
        assert path.read_bytes() == b""
    finally:
        await journal.close()


async def _size(path: Path) -> int:
    return await asyncio.to_thread(lambda: path.stat().st_size)


async def test_after_a_write_stopped_mid_line_the_next_entry_starts_a_line_of_its_own(
    tmp_path: Path,
) -> None:
    """A write that fails (here: the disk goes away, EPIPE) may have left half a line; the
    next kept message must still be readable on its own line."""
    path = journal_path(tmp_path, "torn")
    journal = ReceiveJournal()
    journal.open(path)
    instrument = uuid.uuid4()
    read_end, write_end = os.pipe()
    os.close(read_end)
    saved = _swap_fd(journal, write_end)
    try:
        with pytest.raises(OSError):
            await journal.keep(instrument, MESSAGE)
    finally:
        _restore_fd(journal, saved)
        os.close(write_end)
    try:
        with path.open("ab") as torn:  # what a write cut short leaves behind
            torn.write(b'{"id":"half-writ')
        entry = await journal.keep(instrument, ["H|\\^&|||2", "L|1|N"])
        assert [(e.id, e.records) for e in read_waiting(path)] == [(entry, ["H|\\^&|||2", "L|1|N"])]
        assert journal.waiting == 1
    finally:
        await journal.close()


async def _done(task: asyncio.Task[Any]) -> bool:
    return task.done()


# ---------------------------------------------------------------------- (b) the ASTM link


class Keeper:
    """A ``LinkOptions.keep`` that notes its calls in a shared list of events."""

    def __init__(self, events: list[tuple[str, Any]], *, fail_first: int = 0) -> None:
        self.events = events
        self.fail_first = fail_first
        self.calls: list[list[str]] = []
        self.peer: socket.socket | None = None

    async def __call__(self, records: list[str]) -> str:
        self.calls.append(records)
        seen = _peek(self.peer) if self.peer is not None else None
        if len(self.calls) <= self.fail_first:
            self.events.append(("keep failed", seen))
            raise OSError("disk full")
        token = f"token-{len(self.calls)}"
        self.events.append(("kept", seen))
        return token


def _peek(sock: socket.socket) -> bytes:
    """What the peer could read right now (AF_UNIX: a write is in its buffer at once)."""
    try:
        return sock.recv(64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


@dataclass
class Wire:
    link: ASTMLink
    task: asyncio.Task[None]
    peer: socket.socket
    inbox: Inbox
    events: list[tuple[str, Any]]
    tokens: list[tuple[str, ...]]  # kept_tokens() inside on_message, per message

    async def put(self, data: bytes | int) -> None:
        raw = bytes([data]) if isinstance(data, int) else data
        await asyncio.get_running_loop().sock_sendall(self.peer, raw)

    async def get(self) -> int:
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.peer, 1), 3)
        assert data, "the link closed the connection"
        self.events.append(("reply", data[0]))
        return data[0]


@pytest.fixture
async def wire() -> AsyncIterator[Any]:
    """A host link with a ``keep`` over an AF_UNIX socket pair; the test is the analyzer."""
    opened: list[Wire] = []

    async def make(keeper: Keeper) -> Wire:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        keeper.peer = theirs
        reader, writer = await asyncio.open_connection(sock=ours)
        inbox = Inbox()
        tokens: list[tuple[str, ...]] = []

        async def on_message(records: list[str], frames: list[bytes]) -> None:
            tokens.append(kept_tokens())
            keeper.events.append(("delivered", kept_tokens()))
            await inbox(records, frames)

        options = LinkOptions(role="host", timers=FAST, keep=keeper)
        link = ASTMLink(reader, writer, on_message, options, name="host")
        made = Wire(link, asyncio.create_task(link.run()), theirs, inbox, keeper.events, tokens)
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.peer.close()
        await asyncio.wait_for(made.task, 3)


async def test_link_keeps_the_message_before_acknowledging_its_last_frame(wire: Any) -> None:
    events: list[tuple[str, Any]] = []
    keeper = Keeper(events)
    w: Wire = await wire(keeper)
    await w.put(ENQ)
    assert await w.get() == ACK
    frames = build_frames(MESSAGE)
    for frame in frames[:-1]:
        await w.put(frame)
        assert await w.get() == ACK
    assert keeper.calls == []  # not before the L record
    events.clear()
    await w.put(frames[-1])
    assert await w.get() == ACK
    await w.put(EOT)
    await w.inbox.wait()

    # keep ran while the peer had nothing to read yet (no ACK sent), then the ACK came.
    assert events[:2] == [("kept", b""), ("reply", ACK)]
    assert keeper.calls == [MESSAGE]  # exactly once, with the whole message
    assert w.inbox.messages == [MESSAGE]
    assert w.tokens == [("token-1",)]


async def test_link_refuses_the_last_frame_when_keep_fails_and_accepts_the_resend(
    wire: Any,
) -> None:
    events: list[tuple[str, Any]] = []
    keeper = Keeper(events, fail_first=1)
    w: Wire = await wire(keeper)
    await w.put(ENQ)
    assert await w.get() == ACK
    frames = build_frames(MESSAGE)
    for frame in frames[:-1]:
        await w.put(frame)
        assert await w.get() == ACK
    events.clear()
    await w.put(frames[-1])
    assert await w.get() == NAK  # not kept, so not acknowledged
    await w.put(frames[-1])  # the analyzer sends the same frame again
    assert await w.get() == ACK  # accepted anew, not taken for a duplicate
    await w.put(EOT)
    await w.inbox.wait()

    assert events[:4] == [
        ("keep failed", b""),
        ("reply", NAK),
        ("kept", b""),
        ("reply", ACK),
    ]
    assert keeper.calls == [MESSAGE, MESSAGE]  # the L record is not doubled
    assert w.inbox.messages == [MESSAGE]  # delivered once, with all its records
    assert w.tokens == [("token-2",)]

    # The link carries on: the next transfer is kept and delivered as usual.
    await w.put(ENQ)
    assert await w.get() == ACK
    for frame in build_frames(MESSAGE):
        await w.put(frame)
        assert await w.get() == ACK
    await w.put(EOT)
    await w.inbox.wait(2)
    assert w.inbox.messages == [MESSAGE, MESSAGE]
    assert w.tokens == [("token-2",), ("token-3",)]


async def test_link_without_an_l_record_keeps_nothing(wire: Any) -> None:
    events: list[tuple[str, Any]] = []
    keeper = Keeper(events)
    w: Wire = await wire(keeper)
    await w.put(ENQ)
    assert await w.get() == ACK
    for frame in build_frames(MESSAGE[:-1]):
        await w.put(frame)
        assert await w.get() == ACK
    await w.put(EOT)
    # Then a whole message: only it is kept and handed up.
    await w.put(ENQ)
    assert await w.get() == ACK
    for frame in build_frames(MESSAGE):
        await w.put(frame)
        assert await w.get() == ACK
    await w.put(EOT)
    await w.inbox.wait()
    assert keeper.calls == [MESSAGE]
    assert w.inbox.messages == [MESSAGE]
    assert w.link.discarded == 1


async def test_tcp_upload_of_a_multi_frame_message_is_kept_once() -> None:
    """An instrument-role ASTMLink uploads to an ASTMServer with ``keep`` over TCP."""
    events: list[tuple[str, Any]] = []
    keeper = Keeper(events)
    inbox = Inbox()
    tokens: list[tuple[str, ...]] = []

    async def on_message(records: list[str], frames: list[bytes]) -> None:
        tokens.append(kept_tokens())
        await inbox(records, frames)

    server = ASTMServer(
        "127.0.0.1", 0, on_message, LinkOptions(role="host", timers=FAST, keep=keeper)
    )
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        analyzer = ASTMLink(
            reader, writer, Inbox(), LinkOptions(role="instrument", timers=FAST), name="cobas"
        )
        task = asyncio.create_task(analyzer.run())
        await analyzer.send(RESULTS)  # returns once every frame, the last included, is ACKed
        assert keeper.calls == [RESULTS]  # so keep had already run
        await analyzer.send(MESSAGE)
        await inbox.wait(2)
        analyzer.close()
        await asyncio.wait_for(task, 3)
    finally:
        await server.close()
    assert inbox.messages == [RESULTS, MESSAGE]
    assert keeper.calls == [RESULTS, MESSAGE]
    assert tokens == [("token-1",), ("token-2",)]


# ---------------------------------------------------------------------- (c, d) the supervisor


def _supervisor(settings: Settings, world: World, journal_dir: Path) -> InterfaceSupervisor:
    return InterfaceSupervisor(
        settings,
        reload_interval=0.3,
        listen_host="127.0.0.1",
        organisation_id=world.org,
        journal_dir=journal_dir,
    )


def _journal_file(settings: Settings, world: World, journal_dir: Path) -> Path:
    return journal_path(journal_dir, _journal_name(settings, world.org, 0))


async def _write_journal(path: Path, *entries: tuple[uuid.UUID, list[str]]) -> list[str]:
    """What a crashed run leaves: kept (on disk), never landed."""
    journal = ReceiveJournal()
    journal.open(path)
    try:
        return [await journal.keep(instrument, records) for instrument, records in entries]
    finally:
        await journal.close()


async def _results(settings: Settings, world: World) -> list[Result]:
    async with session_scope(settings) as session:
        return list(
            await session.scalars(
                select(Result).where(Result.organisation_id == world.org).order_by(Result.test_id)
            )
        )


async def _inbound(settings: Settings, world: World) -> list[InterfaceMessage]:
    async with session_scope(settings) as session:
        return list(
            await session.scalars(
                select(InterfaceMessage).where(
                    InterfaceMessage.organisation_id == world.org,
                    InterfaceMessage.direction == "in",
                )
            )
        )


async def _journal_empty(supervisor: InterfaceSupervisor) -> bool:
    assert supervisor.journal.path is not None
    return supervisor.journal.waiting == 0 and read_waiting(supervisor.journal.path) == []


def _records(world: World) -> list[str]:
    simulator = AnalyzerSimulator("roche-cobas", "127.0.0.1", 1)
    return simulator.result_records(
        world.accession, [("685", "182", "mg/dL", "H"), ("690", "0.9", "mg/dL", "N")]
    )


def _landed_as_expected(world: World, results: list[Result]) -> None:
    by_test = {r.order_test_id: r for r in results}
    assert set(by_test) == {world.placed["GLU"].id, world.placed["CREA"].id}
    glu, crea = by_test[world.placed["GLU"].id], by_test[world.placed["CREA"].id]
    assert glu.value_numeric == Decimal("182")
    assert crea.value_numeric == Decimal("0.9")
    for result in results:
        assert (result.status, result.source) == ("entered", "instrument")
        assert result.verified_at is None


async def test_messages_left_in_the_journal_land_at_the_next_start(
    settings: Settings, world: World, tmp_path: Path
) -> None:
    path = _journal_file(settings, world, tmp_path)
    records = _records(world)
    await _write_journal(path, (world.cobas.id, records))
    assert [e.records for e in read_waiting(path)] == [records]

    supervisor = _supervisor(settings, world, tmp_path)
    await supervisor.start()
    try:
        assert supervisor.journal.path == path
        results = await eventually(lambda: _results(settings, world), lambda rs: len(rs) == 2)
        _landed_as_expected(world, results)
        assert await eventually(lambda: _journal_empty(supervisor), bool)
    finally:
        await supervisor.stop()
    assert path.read_bytes() == b""
    assert [m.status for m in await _inbound(settings, world)] == ["ok"]

    # The same message in the journal again (say it landed, then the run stopped before
    # the journal noted it): recognised as a re-send, stored as a duplicate, not applied.
    await _write_journal(path, (world.cobas.id, records))
    again = _supervisor(settings, world, tmp_path)
    await again.start()
    try:
        inbound = await eventually(
            lambda: _inbound(settings, world), lambda ms: len(ms) == 2, within=10
        )
        assert sorted(m.status for m in inbound) == ["duplicate", "ok"]
        assert await eventually(lambda: _journal_empty(again), bool)
    finally:
        await again.stop()
    results = await _results(settings, world)
    assert len(results) == 2  # no second result
    _landed_as_expected(world, results)
    assert all(r.result_version == 1 for r in results)
    assert read_waiting(path) == []


async def test_a_message_still_waiting_while_running_is_landed_again(
    settings: Settings, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message kept but never landed while the process runs (its landing failed, say the
    database was out of reach, or its transfer never reached the lander) is landed again
    by the supervisor's loop once it is overdue, without a restart."""
    monkeypatch.setattr(runtime, "RETRY_WAITING_AFTER_S", 0.2)
    supervisor = _supervisor(settings, world, tmp_path)
    await supervisor.start()
    try:
        # Kept as the link keeps a message, but never handed to the lander.
        await supervisor.journal.keep(world.cobas.id, _records(world))
        assert supervisor.journal.waiting == 1
        results = await eventually(lambda: _results(settings, world), lambda rs: len(rs) == 2)
        _landed_as_expected(world, results)
        assert await eventually(lambda: _journal_empty(supervisor), bool)
    finally:
        await supervisor.stop()
    assert [m.status for m in await _inbound(settings, world)] == ["ok"]


async def test_an_unreadable_journal_entry_is_kept_as_an_error_message(
    settings: Settings, world: World, tmp_path: Path
) -> None:
    path = _journal_file(settings, world, tmp_path)
    await _write_journal(
        path,
        (world.cobas.id, ["X|garbage with no header", "L|1|N"]),
        (world.cobas.id, _records(world)),
    )
    async with _supervisor(settings, world, tmp_path) as supervisor:
        inbound = await eventually(
            lambda: _inbound(settings, world), lambda ms: len(ms) == 2, within=10
        )
        assert sorted(m.status for m in inbound) == ["error", "ok"]
        assert await eventually(lambda: _journal_empty(supervisor), bool)
    _landed_as_expected(world, await _results(settings, world))
    assert read_waiting(path) == []


async def test_a_journal_entry_of_no_known_instrument_stays_waiting(
    settings: Settings, world: World, tmp_path: Path
) -> None:
    path = _journal_file(settings, world, tmp_path)
    stray = uuid.uuid4()
    [stray_id, _] = await _write_journal(
        path, (stray, ["H|\\^&", "L|1|N"]), (world.cobas.id, _records(world))
    )
    async with _supervisor(settings, world, tmp_path) as supervisor:
        results = await eventually(lambda: _results(settings, world), lambda rs: len(rs) == 2)
        _landed_as_expected(world, results)
        waiting = await eventually(
            lambda: _read(path), lambda entries: [e.id for e in entries] == [stray_id]
        )
        assert [(e.id, e.instrument_id) for e in waiting] == [(stray_id, stray)]
        assert supervisor.journal.waiting == 1  # kept, not dropped
    assert [e.id for e in read_waiting(path)] == [stray_id]


async def test_a_second_supervisor_on_the_same_journal_is_refused(
    settings: Settings, world: World, tmp_path: Path
) -> None:
    async with _supervisor(settings, world, tmp_path) as first:
        assert first.journal.path == _journal_file(settings, world, tmp_path)
        with pytest.raises(JournalBusy):
            await _supervisor(settings, world, tmp_path).start()
        assert world.cobas.id in first.connections  # the first one is unaffected


async def test_an_analyzer_upload_leaves_nothing_waiting_once_landed(
    settings: Settings, world: World, tmp_path: Path
) -> None:
    async with _supervisor(settings, world, tmp_path) as supervisor:
        path = _journal_file(settings, world, tmp_path)
        assert supervisor.journal.path == path
        port = supervisor.port_of(world.cobas.id)
        assert port is not None
        async with AnalyzerSimulator(
            "roche-cobas", "127.0.0.1", port, mode="client", timers=ANALYZER_TIMERS
        ) as analyzer:
            report = await analyzer.upload_results(
                world.accession, [("685", "182", "mg/dL", "H"), ("690", "0.9", "mg/dL", "N")]
            )
            assert report.ok, report.error
        results = await eventually(lambda: _results(settings, world), lambda rs: len(rs) == 2)
        _landed_as_expected(world, results)
        assert await eventually(lambda: _journal_empty(supervisor), bool)
        assert path.read_bytes() == b""
        [message] = await _inbound(settings, world)
        assert message.status == "ok"
        assert message.raw == "".join(r + "\r" for r in report.records)
