"""Sliding-window counters of events per key (e.g. failed logins per client address).

``MemoryWindowCounter`` keeps the counts in this process (the default: one server process).
``RedisWindowCounter`` keeps them in Redis, shared by every API process and machine; use it
as soon as there is more than one (``NIDAAN_REDIS_URL``). Both count an event when it is
``hit`` and forget it ``window_seconds`` later.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections import OrderedDict, deque
from typing import Any, Protocol


class WindowCounter(Protocol):
    async def hit(self, key: str) -> int:
        """Count one event for ``key`` now; return the events in the window, this one too."""
        ...

    async def count(self, key: str) -> int:
        """Events for ``key`` in the window (without adding one)."""
        ...

    async def close(self) -> None: ...


class MemoryWindowCounter:
    """Counts in this process's memory; at most ``max_keys`` keys (the oldest are dropped)."""

    def __init__(self, window_seconds: float, *, max_keys: int = 100_000) -> None:
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def _current(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque()
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        horizon = now - self.window_seconds
        while events and events[0] <= horizon:
            events.popleft()
        return events

    async def hit(self, key: str) -> int:
        now = time.monotonic()
        events = self._current(key, now)
        events.append(now)
        return len(events)

    async def count(self, key: str) -> int:
        return len(self._current(key, time.monotonic()))

    async def close(self) -> None:
        self._events.clear()


class RedisWindowCounter:
    """Counts in a Redis sorted set per key (members are event times), shared by processes.

    Each ``hit`` is one MULTI/EXEC transaction (trim, add, count, expire), so concurrent
    hits from several processes each see a distinct count.
    """

    def __init__(self, url: str, window_seconds: float, *, prefix: str = "nidaan:") -> None:
        from redis.asyncio import Redis

        self.window_ms = int(window_seconds * 1000)
        self.prefix = prefix
        self._redis: Any = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    async def hit(self, key: str) -> int:
        name = self.prefix + key
        now_ms = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, 0, now_ms - self.window_ms)
            pipe.zadd(name, {f"{now_ms}:{secrets.token_hex(4)}": now_ms})
            pipe.zcard(name)
            pipe.pexpire(name, self.window_ms)
            _, _, count, _ = await pipe.execute()
        return int(count)

    async def count(self, key: str) -> int:
        name = self.prefix + key
        now_ms = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, 0, now_ms - self.window_ms)
            pipe.zcard(name)
            _, count = await pipe.execute()
        return int(count)

    async def close(self) -> None:
        await self._redis.aclose()


def window_counter(redis_url: str | None, window_seconds: float, *, prefix: str) -> WindowCounter:
    """Redis-backed when ``redis_url`` is set, else counted in this process."""
    if redis_url:
        return RedisWindowCounter(redis_url, window_seconds, prefix=prefix)
    return MemoryWindowCounter(window_seconds)


def client_key(address: str | None) -> str:
    """The throttling key of a client address: IPv4 as is, IPv6 by its /64 network (one
    customer line gets a whole /64, so single addresses would be free to rotate)."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
