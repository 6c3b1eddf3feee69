"""ASTM links over TCP (server and client) and RS-232 (pyserial), all with one interface.

``await start()``, ``await send(records)``, ``await close()``; received transfers go to
``on_message(records, raw_frames)``. Each TCP connection runs its own ``ASTMLink`` task, so a
peer that sends garbage or drops mid-message affects only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

from nidaan.integration.astm.errors import ASTMNotConnected
from nidaan.integration.astm.protocol import ASTMLink, LinkOptions, OnMessage
from nidaan.integration.guard import IdleTimeoutReader, ListenerPolicy

log = logging.getLogger(__name__)


class ASTMServer:
    """The LIS listens; analyzers (or terminal servers) connect. One link per connection.

    ``policy`` (without it: anyone, any number, never idle out) says which peers may connect,
    how many at once and after how long a silent connection is closed."""

    def __init__(
        self,
        host: str,
        port: int,
        on_message: OnMessage,
        options: LinkOptions | None = None,
        *,
        busy: Callable[[], bool] | None = None,
        policy: ListenerPolicy | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.on_message = on_message
        self.options = options or LinkOptions()
        self.busy = busy
        self.policy = policy
        self.links: set[ASTMLink] = set()
        #: The peer address of each open link (order downloads go to the analyzer's own).
        self.peers: dict[ASTMLink, str] = {}
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Condition()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self.policy is not None:
            why = self.policy.refusal(peer, len(self.links))
            if why is not None:
                self.refused += 1
                log.warning("astm server %s:%s: refused %s: %s", self.host, self.port, peer, why)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                return
            if self.policy.idle_timeout_s:
                reader = cast(
                    asyncio.StreamReader, IdleTimeoutReader(reader, self.policy.idle_timeout_s)
                )
        link = ASTMLink(
            reader, writer, self.on_message, self.options, busy=self.busy, name=f"astm {peer}"
        )
        self.links.add(link)
        self.peers[link] = peer[0] if isinstance(peer, tuple) and peer else ""
        async with self._connected:
            self._connected.notify_all()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await link.run()
        except asyncio.CancelledError:
            # Shutting down. Ending normally (not "cancelled") keeps asyncio's stream
            # callback from logging a spurious error for every open connection.
            pass
        except Exception:
            log.exception("astm server: connection %s failed", peer)
        finally:
            self.links.discard(link)
            self.peers.pop(link, None)
            if task is not None:
                self._tasks.discard(task)
            link.close()

    async def wait_for_connection(self, within: float | None = None) -> ASTMLink:
        async def wait() -> ASTMLink:
            async with self._connected:
                await self._connected.wait_for(lambda: bool(self.links))
                return next(iter(self.links))

        return await asyncio.wait_for(wait(), within)

    async def send(self, records: Sequence[str], link: ASTMLink | None = None) -> None:
        """Send on ``link``, or on the only connection (an error when there are several)."""
        if link is None:
            live = [lk for lk in self.links if not lk.closed]
            if len(live) != 1:
                raise ASTMNotConnected(f"{len(live)} connections; pass the link to send on")
            link = live[0]
        await link.send(records)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self.links):
            link.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()


class ASTMClient:
    """The LIS connects to the analyzer (or its terminal server); reconnects with backoff."""

    def __init__(
        self,
        host: str,
        port: int,
        on_message: OnMessage,
        options: LinkOptions | None = None,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        connect_timeout: float = 10.0,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.busy = busy
        self.host = host
        self.port = port
        self.on_message = on_message
        self.options = options or LinkOptions()
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self.link: ASTMLink | None = None
        self.connections = 0
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"astm-client {self.host}:{self.port}")

    def _delay(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff_initial * 2**attempt)
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not security

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.connect_timeout
                )
            except (OSError, TimeoutError) as exc:
                delay = self._delay(attempt)
                attempt += 1
                log.info("astm client: connect failed (%s); retry in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            link = ASTMLink(
                reader, writer, self.on_message, self.options, busy=self.busy, name="astm-client"
            )
            self.connections += 1
            async with self._changed:
                self.link = link
                self._changed.notify_all()
            try:
                await link.run()
            except Exception:
                log.exception("astm client: link failed")
            finally:
                async with self._changed:
                    self.link = None
                    self._changed.notify_all()
            await asyncio.sleep(self._delay(0))

    async def wait_connected(self, within: float | None = None) -> ASTMLink:
        async def wait() -> ASTMLink:
            async with self._changed:
                await self._changed.wait_for(lambda: self.link is not None)
                assert self.link is not None
                return self.link

        return await asyncio.wait_for(wait(), within)

    async def send(self, records: Sequence[str], within: float | None = None) -> None:
        link = self.link if self.link is not None else await self.wait_connected(within)
        await link.send(records)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.link is not None:
            self.link.close()


class _SerialWriter:
    """``ByteWriter`` over a pyserial port; writes run in a thread."""

    def __init__(self, port: Any) -> None:
        self._port = port
        self._pending: list[bytes] = []
        self._closing = False

    def write(self, data: bytes) -> None:
        self._pending.append(data)

    async def drain(self) -> None:
        data, self._pending = b"".join(self._pending), []
        if data:
            await asyncio.to_thread(self._write_all, data)

    def _write_all(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def close(self) -> None:
        self._closing = True

    def is_closing(self) -> bool:
        return self._closing


class ASTMSerial:
    """RS-232 link through pyserial; a reader thread feeds an ``asyncio.StreamReader``.

    ``device`` is a path (``/dev/ttyUSB0``) or a pyserial URL (``loop://``, ``socket://``,
    ``rfc2217://``). Extra keyword arguments go to ``serial.serial_for_url``. ``start()`` fails
    when the port cannot be opened; a port that goes away later (a USB adapter unplugged, a
    terminal server restarted) is opened again with backoff, like a TCP client reconnects.
    """

    def __init__(
        self,
        device: str,
        baudrate: int = 9600,
        on_message: OnMessage | None = None,
        options: LinkOptions | None = None,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        **serial_kwargs: Any,
    ) -> None:
        self.device = device
        self.baudrate = baudrate
        self.on_message: OnMessage = on_message or (lambda records, frames: None)
        self.options = options or LinkOptions()
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.serial_kwargs = serial_kwargs
        self.link: ASTMLink | None = None
        #: Times the port was opened (1 after ``start()``; more after it went away).
        self.opened = 0
        self._port: Any = None
        self._stop = threading.Event()  # the current port's reader thread
        self._closing = False
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._open()
        self._task = asyncio.create_task(self._run(), name=f"astm-serial {self.device}")

    def _open(self) -> None:
        import serial  # pyserial; imported here so the module loads without it

        port = serial.serial_for_url(
            self.device, baudrate=self.baudrate, timeout=0.05, **self.serial_kwargs
        )
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        self._port, self._stop = port, threading.Event()
        self._thread = threading.Thread(
            target=self._read_thread,
            args=(loop, reader, port, self._stop),
            daemon=True,
            name="astm-serial",
        )
        self._thread.start()
        self.link = ASTMLink(
            reader, _SerialWriter(port), self.on_message, self.options, name=self.device
        )
        self.opened += 1

    async def _close_port(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2)
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.close()

    def _delay(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff_initial * 2**attempt)
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not security

    async def _run(self) -> None:
        """Run the link; when the port goes away, open it again (with backoff)."""
        while True:
            assert self.link is not None
            try:
                await self.link.run()
            except Exception:
                log.exception("astm serial %s: link failed", self.device)
            if self._closing:
                return
            await self._close_port()
            attempt = 0
            while True:
                delay = self._delay(attempt)
                attempt += 1
                log.info("astm serial %s: port lost; opening again in %.1fs", self.device, delay)
                await asyncio.sleep(delay)
                if self._closing:
                    return
                try:
                    self._open()
                except Exception as exc:
                    log.info("astm serial %s: cannot open: %s", self.device, exc)
                    continue
                log.info("astm serial %s: port open again", self.device)
                break

    @staticmethod
    def _read_thread(
        loop: asyncio.AbstractEventLoop,
        reader: asyncio.StreamReader,
        port: Any,
        stop: threading.Event,
    ) -> None:
        try:
            while not stop.is_set():
                data = port.read(max(1, port.in_waiting))
                if data:
                    loop.call_soon_threadsafe(reader.feed_data, data)
        except Exception as exc:
            log.warning("astm serial %s: read failed: %s", port.name, exc)
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(reader.feed_eof)

    async def send(self, records: Sequence[str]) -> None:
        if self.link is None:
            raise ASTMNotConnected("serial port not open")
        await self.link.send(records)

    async def close(self) -> None:
        self._closing = True
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2)
        if self._task is not None:
            # The link ends at the EOF the reader thread feeds; a task waiting to open the
            # port again is cancelled.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 2)
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.close()
