"""When to sync: after local writes (debounced), on a timer, on reconnect, with backoff.

One asyncio task runs the sync attempts and another the heartbeats; they share the network
monitor. ``attempt()`` is also what ``--once`` and "Sync now" call, so the classification of
failures lives in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from nidaan.sync.client.backoff import Backoff
from nidaan.sync.client.engine import SyncClient, SyncReport
from nidaan.sync.client.errors import (
    AuthExpired,
    NetworkError,
    PermanentError,
    ServerError,
    SyncError,
    UpgradeRequired,
)
from nidaan.sync.client.status import NetworkMonitor, NetworkState, Outcome, StatusSnapshot

OUTCOMES: list[tuple[type[SyncError], Outcome]] = [
    (NetworkError, Outcome.NETWORK),
    (ServerError, Outcome.SERVER),
    (AuthExpired, Outcome.AUTH),
    (PermanentError, Outcome.PERMANENT),
]


class SyncScheduler:
    def __init__(
        self,
        client: SyncClient,
        *,
        debounce_s: float = 1.5,
        interval_s: float = 30.0,
        heartbeat_s: float = 15.0,
        backoff: Backoff | None = None,
        monitor: NetworkMonitor | None = None,
        on_event: Callable[[str], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.debounce_s = debounce_s
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.backoff = backoff or Backoff()
        self.monitor = monitor or NetworkMonitor()
        self._emit = on_event or (lambda _message: None)
        self._now = monotonic
        self._due = monotonic()  # the first attempt is immediate
        self._wake = asyncio.Event()
        self.last_error: str | None = None
        self.last_report: SyncReport | None = None
        self.stopped: str | None = None  # set when only a person can fix things (upgrade)
        client.on_local_write(self.notify_local_write)

    # -- triggers ----------------------------------------------------------------------------

    def notify_local_write(self) -> None:
        """A local write: sync soon, unless a backoff is running (the line is still bad)."""
        if self.backoff.failures:
            return
        self._set_due(min(self._due, self._now() + self.debounce_s))

    def notify_reconnect(self) -> None:
        """The server is reachable again: forget the backoff and sync now."""
        self.backoff.reset()
        self._set_due(self._now())

    def sync_now(self) -> None:
        self._set_due(self._now())

    def _set_due(self, due: float) -> None:
        self._due = due
        self._wake.set()

    # -- the attempts ------------------------------------------------------------------------

    async def attempt(self) -> SyncReport | None:
        """One ``sync()``, its outcome recorded and the next attempt planned."""
        started = self._now()
        try:
            report = await self.client.sync()
        except UpgradeRequired as exc:
            self.stopped = self.last_error = str(exc)
            self.monitor.sync(Outcome.PERMANENT)
            self._emit(f"stopped: {exc}")
            return None
        except SyncError as exc:
            outcome = next(o for kind, o in OUTCOMES if isinstance(exc, kind))
            self.monitor.sync(outcome)
            self.last_error = f"{type(exc).__name__}: {exc}"
            # An expired login needs a person; retry slowly in case the password is fixed.
            delay = self.backoff.cap if outcome == Outcome.AUTH else self.backoff.next_delay()
            self._due = self._now() + delay
            self._emit(f"sync failed ({outcome}): {exc}; next try in {delay:.0f}s")
            return None
        self.monitor.sync(Outcome.OK, self._now() - started)
        self.backoff.reset()
        self.last_error = None
        self.last_report = report
        self._due = self._now() + self.interval_s
        self._emit(f"synced: {report.line()}")
        return report

    async def heartbeat(self) -> None:
        """Probe ``/healthz``; a line that came back triggers a sync."""
        try:
            latency = await self.client.transport.heartbeat()
        except NetworkError:
            self.monitor.heartbeat(ok=False)
            return
        except SyncError:
            self.monitor.sync(Outcome.SERVER)
            return
        if self.monitor.heartbeat(ok=True, latency_s=latency):
            self._emit("server reachable again")
            self.notify_reconnect()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Sync until ``stop`` is set or the server requires an upgrade."""
        stop = stop or asyncio.Event()
        beats = asyncio.create_task(self._heartbeats(stop))
        try:
            while not stop.is_set() and self.stopped is None:
                wait = self._due - self._now()
                if wait > 0:
                    self._wake.clear()
                    await _wait_any(stop, self._wake, wait)
                    continue
                await self.attempt()
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.heartbeat()
            offline = self.monitor.state == NetworkState.OFFLINE
            # Probe more often while offline so the reconnect is noticed quickly.
            await _wait_any(stop, None, min(self.heartbeat_s, 5.0) if offline else self.heartbeat_s)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> StatusSnapshot:
        store = self.client.store
        wait = self._due - self._now()
        return StatusSnapshot(
            client_id=self.client.client_id,
            network=self.monitor.state,
            pending_ops=store.pending_count(),
            failed_ops=store.failed_count(),
            open_conflicts=store.open_conflict_count(),
            last_sync_at=self.client.last_sync_at,
            last_error=self.last_error,
            next_attempt_in_s=wait if self.backoff.failures and wait > 0 else None,
            upgrade_required=self.client.upgrade_required,
            clock_offset_ms=self.client.clock.offset_ms,
        )


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Sleep up to ``seconds``, or less if either event is set."""
    waiters = [asyncio.create_task(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.create_task(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
