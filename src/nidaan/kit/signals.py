"""Stop long-running commands the same way on SIGTERM as on Ctrl-C (SIGINT).

systemd and ``docker stop`` send SIGTERM; a person presses Ctrl-C. Python only turns SIGINT
into ``KeyboardInterrupt`` (so ``finally`` blocks run); SIGTERM's default action kills the
process on the spot, leaving the embedded PostgreSQL and child processes running. The
helpers here make both signals take the ``KeyboardInterrupt`` path, so every process role
runs its clean-up and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

from uvicorn.supervisors import Multiprocess

T = TypeVar("T")

#: The signals that mean "stop now, cleanly".
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class StopRequest:
    """Which signal asked the process to stop (None while none has)."""

    signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


#: The stop request of the innermost ``stop_on_signals`` block, if any.
_active: StopRequest | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Within the block SIGTERM and SIGINT both raise ``KeyboardInterrupt`` in the main
    thread; the interrupt is swallowed at the end of the block and ``StopRequest`` says
    which signal it was. Servers that install their own handlers meanwhile (uvicorn,
    procrastinate, asyncio) restore these afterwards, and a signal they re-raise lands here.
    """
    global _active
    request = _active = StopRequest()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        first = request.signal_name is None
        request.signal_name = signal.Signals(signum).name
        if first:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield request
    except KeyboardInterrupt:
        request.signal_name = request.signal_name or signal.SIGINT.name
    finally:
        _active = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_until_stopped(main: Coroutine[Any, Any, T]) -> T | None:
    """``asyncio.run(main)`` where SIGTERM stops it exactly as Ctrl-C does: the main task is
    cancelled, so its ``finally`` blocks run inside the loop. Returns None when stopped."""

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(sig: signal.Signals) -> None:
            note_stop_signal(sig.name)
            task.cancel()

        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop, sig)
        try:
            return await main
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(guarded())
    except (asyncio.CancelledError, KeyboardInterrupt):
        return None


@contextlib.contextmanager
def process_role(say: Callable[[str], None]) -> Iterator[StopRequest]:
    """Run a process role (server, worker, interfaces) until it ends or is stopped.

    SIGTERM and Ctrl-C stop it alike; either way the embedded database this process
    started is stopped (when no other Nidaan process still uses it), the block exits
    normally (exit status 0) and ``say`` reports what happened.
    """
    from nidaan.kit.embedded import stop_embedded_servers

    with stop_on_signals() as stop:
        try:
            yield stop
        finally:
            if stop.requested:
                say(f"Stopping ({stop.signal_name}) ...")
            for line in stop_embedded_servers():
                say(line)
            say("Stopped.")


def note_stop_signal(name: str) -> None:
    """Tell the innermost ``stop_on_signals`` block that a signal handled elsewhere (e.g. by
    a server's own handler) is stopping the process."""
    if _active is not None and not _active.requested:
        _active.signal_name = name


class ServerProcesses(Multiprocess):
    """uvicorn's supervisor of several server processes, telling ``process_role`` which
    signal stopped it (it keeps its own handlers and does not re-raise the signal)."""

    def handle_int(self) -> None:
        note_stop_signal(signal.SIGINT.name)
        super().handle_int()

    def handle_term(self) -> None:
        note_stop_signal(signal.SIGTERM.name)
        super().handle_term()
