"""The receive journal: ASTM messages kept on disk from their last ACK until they are landed.

An analyzer considers a message delivered once we acknowledge its last frame; results then
land in the database in batches (``nidaan.integration.landing``), a moment later. So that
a crash, a kill or a power cut in that moment loses nothing, the interfaces process writes
each complete message to this journal, and flushes it to disk, *before* acknowledging the
frame that completes it; once the message is landed (or kept as an error message) the
journal notes that. What is still waiting a minute later (the database was out of reach)
is landed again by the running process, and at the next start everything not noted as
landed is landed again (a message that did land meanwhile is recognised as a re-send and
not applied twice).

The journal is an append-only file of JSON lines, one per database and process share
(``<data dir>/interfaces/received-<database>-<share>.jsonl``), locked against a second
process; it is emptied whenever nothing in it is waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["JournalBusy", "JournalEntry", "ReceiveJournal", "journal_path"]


class JournalBusy(RuntimeError):
    """Another process holds the journal (two interfaces processes for the same share)."""


@dataclass(frozen=True)
class JournalEntry:
    id: str
    instrument_id: uuid.UUID
    records: list[str]


def journal_path(directory: Path, name: str) -> Path:
    return directory / f"received-{name}.jsonl"


class ReceiveJournal:
    """See the module docstring. ``open(path)`` before use; ``await close()`` at the end."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._fd: int | None = None
        # Waiting entries, with when they were kept (monotonic seconds; 0: an earlier run).
        self._pending: dict[str, tuple[JournalEntry, float]] = {}
        self._torn = False  # a failed write may have left half a line

    def open(self, path: Path) -> list[JournalEntry]:
        """Lock and read the journal at ``path``; the entries left waiting by an earlier run
        (they stay waiting until ``landed``)."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalBusy(
                f"{path} is in use by another interfaces process; run one process per "
                "share (nidaan interfaces --processes N starts them all)"
            ) from None
        self._fd = fd
        size = os.fstat(fd).st_size
        # A line torn by a crash mid-write (its frame was never acknowledged): end it, so the
        # next entry starts a line of its own.
        self._torn = bool(size) and os.pread(fd, 1, size - 1) != b"\n"
        entries = read_waiting(path)
        self._pending = {e.id: (e, 0.0) for e in entries}
        return entries

    async def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # also releases the lock
            self._fd = None

    @property
    def waiting(self) -> int:
        """Entries kept but not yet landed."""
        return len(self._pending)

    async def keep(self, instrument_id: uuid.UUID, records: Sequence[str]) -> str:
        """Write a complete message and flush it to disk; its entry id. Raises OSError when
        it cannot (the caller must then not acknowledge the message)."""
        entry = JournalEntry(uuid.uuid4().hex, instrument_id, list(records))
        line = {"id": entry.id, "instrument": str(instrument_id), "records": entry.records}
        self._write(_encode(line), sync=True)
        self._pending[entry.id] = (entry, time.monotonic())
        return entry.id

    def overdue(self, after_s: float) -> list[JournalEntry]:
        """Entries kept more than ``after_s`` seconds ago and still waiting (their landing
        failed, e.g. the database was out of reach, or their transfer never reached the
        lander)."""
        cutoff = time.monotonic() - after_s
        return [entry for entry, kept_at in self._pending.values() if kept_at <= cutoff]

    def landed(self, *entry_ids: str) -> None:
        """The entries' messages are in the database. Not flushed: after a power cut they
        may land again, and are then recognised as re-sends."""
        for entry_id in entry_ids:
            self._landed(entry_id)

    def _landed(self, entry_id: str) -> None:
        if entry_id not in self._pending or self._fd is None:
            return
        del self._pending[entry_id]
        try:
            if self._pending:
                self._write(_encode({"done": entry_id}), sync=False)
            else:
                # Nothing waits: start afresh rather than let the file grow.
                os.ftruncate(self._fd, 0)
                self._torn = False
        except OSError as exc:
            log.error("receive journal %s: %s (the entry may land again)", self.path, exc)

    def _write(self, data: bytes, *, sync: bool) -> None:
        """Append ``data`` (whole lines). Done in the event loop, not a worker thread: a
        flush costs well under a millisecond on an SSD, and waiting for a thread to hand the
        answer back would hold the analyzer's ACK behind whatever the loop is busy with."""
        if self._fd is None:
            raise OSError("the receive journal is closed")
        if self._torn:
            data = b"\n" + data
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if sync:
                os.fdatasync(self._fd)
        except OSError:
            self._torn = True  # it may have stopped mid-line
            raise
        self._torn = False


def read_waiting(path: Path) -> list[JournalEntry]:
    """The entries of a journal file not noted as landed (a torn last line is skipped: its
    frame was never acknowledged)."""
    entries: dict[str, JournalEntry] = {}
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return []
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
            if "done" in line:
                entries.pop(line["done"], None)
            else:
                entries[line["id"]] = JournalEntry(
                    line["id"], uuid.UUID(line["instrument"]), list(line["records"])
                )
        except (ValueError, KeyError, TypeError):
            log.warning("receive journal %s: unreadable line skipped", path)
    return list(entries.values())


def _encode(line: dict[str, object]) -> bytes:
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
