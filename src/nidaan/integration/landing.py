"""Landing received ASTM result messages: one queue for all instruments of a process.

Each ASTM connection hands its received result messages to the supervisor's :class:`Lander`
and its link goes on acknowledging the analyzer. One task lands what queued meanwhile, of
every instrument this process runs, with one transaction per organisation
(``integration_service.ingest_received``): a lab's analyzers that send together share the
cost of a transaction (its reads, the commit, change capture, audit chaining) instead of
paying it per message or per instrument. Messages of one instrument land in arrival order.

If a batch cannot be landed together (an error in one message), its messages land one by one
through their connection, which keeps an unusable one as an error message: nothing received
is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from nidaan.config import Settings
from nidaan.integration.domain import InstrumentMessage
from nidaan.integration.journal import ReceiveJournal
from nidaan.integration.service import integration_service
from nidaan.kit.aio import pause_every
from nidaan.kit.db import session_scope
from nidaan.kit.errors import NotFound

log = logging.getLogger(__name__)

__all__ = ["MAX_LANDING_BATCH", "Lander", "LandingSource"]

#: Most messages landed in one transaction (those that queued while the previous landed).
MAX_LANDING_BATCH = 64


class LandingSource(Protocol):
    """What the lander needs of a connection."""

    @property
    def instrument_id(self) -> uuid.UUID: ...

    @property
    def organisation_id(self) -> uuid.UUID: ...

    @property
    def name(self) -> str: ...

    def to_message(self, parsed: Any, raw: str) -> InstrumentMessage: ...

    async def land_alone(self, parsed: Any, raw: str) -> bool:
        """Land in a transaction of its own (or keep as an error message); False: nothing
        could be stored."""
        ...

    def landed(self, count: int) -> None: ...


@dataclass
class _Received:
    source: LandingSource
    parsed: Any
    raw: str
    kept: tuple[str, ...]  # its receive-journal entries
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Lander:
    """Lands queued result messages, many at a time; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        journal: ReceiveJournal | None = None,
        max_batch: int = MAX_LANDING_BATCH,
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Received | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: Journal entries queued or being landed now.
        self.in_flight: set[str] = set()
        #: Transactions and messages so far (for logs and the benchmark).
        self.batches = 0
        self.messages = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._loop(), name="interfaces-lander")

    async def stop(self) -> None:
        """Land what is queued, then stop."""
        if self._task is not None:
            self._queue.put_nowait(None)  # after everything queued so far
            await self._task
            self._task = None
        while not self._queue.empty():  # queued without a running task
            if (first := self._queue.get_nowait()) is not None:
                batch, _ = self._take(first)
                await self._land(batch)

    def submit(
        self, source: LandingSource, parsed: Any, raw: str, kept: tuple[str, ...] = ()
    ) -> asyncio.Future[None]:
        """Queue a received message (``kept``: its receive-journal entries, noted as landed
        once it is); the future is done once it is landed, kept as an error message, or
        (the database out of reach) left in the journal. Without a running lander it is
        landed by ``stop``."""
        received = _Received(source, parsed, raw, kept)
        self.in_flight.update(kept)
        received.done.add_done_callback(lambda _: self.in_flight.difference_update(kept))
        self._queue.put_nowait(received)
        return received.done

    def _take(self, first: _Received) -> tuple[list[_Received], bool]:
        """``first`` and what queued after it (up to ``max_batch``); True: stop after."""
        batch = [first]
        while len(batch) < self.max_batch and not self._queue.empty():
            received = self._queue.get_nowait()
            if received is None:
                return batch, True
            batch.append(received)
        return batch, False

    async def _loop(self) -> None:
        while (first := await self._queue.get()) is not None:
            batch, stopping = self._take(first)
            await self._land(batch)
            if stopping:
                return

    async def _land(self, batch: list[_Received]) -> None:
        by_organisation: dict[uuid.UUID, list[_Received]] = {}
        for received in batch:
            by_organisation.setdefault(received.source.organisation_id, []).append(received)
        for items in by_organisation.values():
            try:
                await self._land_together(items)
                self._journal_landed(items)
            except Exception:
                if len(items) > 1:
                    log.warning(
                        "interfaces: %d messages not landed together; one by one",
                        len(items),
                        exc_info=True,
                    )
                await self._land_each(items)
            finally:
                for received in items:
                    if not received.done.done():
                        received.done.set_result(None)

    async def _land_together(self, items: list[_Received]) -> None:
        messages = []
        for index, received in enumerate(items):
            await pause_every(index, 8)
            messages.append(received.source.to_message(received.parsed, received.raw))
        organisation_id = items[0].source.organisation_id
        async with session_scope(self.settings) as session:
            wanted = {r.source.instrument_id for r in items}
            instruments = await integration_service.instruments_by_ids(
                session, wanted, organisation_id
            )
            if len(instruments) != len(wanted):
                raise NotFound("The instrument was deleted.", entity="instrument")
            reports = await integration_service.ingest_received(
                session,
                organisation_id,
                [
                    (instruments[r.source.instrument_id], m)
                    for r, m in zip(items, messages, strict=True)
                ],
            )
        self.batches += 1
        self.messages += len(items)
        counts: dict[LandingSource, int] = {}
        for received in items:
            counts[received.source] = counts.get(received.source, 0) + 1
        for source, count in counts.items():
            source.landed(count)
        log.info(
            "interfaces: %d message(s) from %d instrument(s) stored (%d duplicate), "
            "%d result(s), %d exception(s)",
            len(reports),
            len(counts),
            sum(r.duplicate for r in reports),
            sum(len(r.results) for r in reports),
            sum(len(r.exceptions) for r in reports),
        )

    async def _land_each(self, items: list[_Received]) -> None:
        for received in items:
            try:
                if await received.source.land_alone(received.parsed, received.raw):
                    self._journal_landed([received])
                else:
                    log.error(
                        "interface %s: message not stored; it stays in the receive journal "
                        "and is landed again later",
                        received.source.name,
                    )
            except Exception:
                log.exception("interface %s: message not landed", received.source.name)
            received.done.set_result(None)

    def _journal_landed(self, items: list[_Received]) -> None:
        if self.journal is not None:
            self.journal.landed(*(entry_id for r in items for entry_id in r.kept))
