"""A small cache of derived data (price books...), shared by every API process when Redis is set.

``MemoryCache`` keeps entries in this process (the default: one server process, ``make run``).
``RedisCache`` keeps them in Redis (``NIDAAN_REDIS_URL``), so every API process and machine
reads the same entries and an invalidation made by one is seen by all at once: there is no
second, per-process layer that could go stale.

Invalidation is by generation: a family of entries (e.g. one organisation's rate lists) has a
counter; entries are stored under the counter's current value and a change increments it, so
every older entry is unreachable at once (no scan, no pub/sub). Writers bump the generation
both when they change the data and again after their transaction commits (a reader between
the two could have cached the old rows). Entries also expire (``ttl``), which bounds any
change that bypassed the service (a restore, a manual SQL fix).

A cache failure (Redis down) never fails a request: reads miss and the caller asks the
database, exactly as without a cache.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 300


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl: float) -> None: ...

    async def generation(self, family: str) -> int:
        """The current generation of ``family`` (0 when never bumped)."""
        ...

    async def bump(self, family: str) -> int:
        """Make every entry stored under ``family``'s current generation unreachable."""
        ...

    async def close(self) -> None: ...


class MemoryCache:
    """Entries in this process's memory; at most ``max_keys`` (the least recently used go)."""

    def __init__(self, *, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._generations: dict[str, int] = {}

    async def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._entries[key] = (time.monotonic() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    async def generation(self, family: str) -> int:
        return self._generations.get(family, 0)

    async def bump(self, family: str) -> int:
        value = self._generations[family] = self._generations.get(family, 0) + 1
        return value

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """Entries in Redis, shared by every process; generations are Redis counters (INCR)."""

    def __init__(self, url: str, *, prefix: str = "nidaan:cache:") -> None:
        from redis.asyncio import Redis

        self.prefix = prefix
        self._redis: Any = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    async def get(self, key: str) -> str | None:
        try:
            value = await self._redis.get(self.prefix + key)
        except Exception as exc:  # a cache outage is a miss, never a failed request
            logger.warning("cache read failed: %s", type(exc).__name__)
            return None
        return value.decode() if value is not None else None

    async def set(self, key: str, value: str, ttl: float) -> None:
        try:
            await self._redis.set(self.prefix + key, value, px=int(ttl * 1000))
        except Exception as exc:
            logger.warning("cache write failed: %s", type(exc).__name__)

    async def generation(self, family: str) -> int:
        value = await self._redis.get(self.prefix + "gen:" + family)
        return int(value) if value is not None else 0

    async def bump(self, family: str) -> int:
        return int(await self._redis.incr(self.prefix + "gen:" + family))

    async def close(self) -> None:
        await self._redis.aclose()


_caches: dict[str | None, Cache] = {}


def get_cache(redis_url: str | None = None) -> Cache:
    """The process's cache for ``redis_url`` (None: the configured one, else in memory)."""
    if redis_url is None:
        from nidaan.config import get_settings

        redis_url = get_settings().redis_url or None
    cache = _caches.get(redis_url)
    if cache is None:
        cache = _caches[redis_url] = RedisCache(redis_url) if redis_url else MemoryCache()
    return cache


async def close_caches() -> None:
    for cache in list(_caches.values()):
        await cache.close()
    _caches.clear()


def changing(session: AsyncSession, family: str) -> bool:
    """Whether ``session``'s open transaction changed ``family`` (it must not read or fill
    the cache: others must never see its uncommitted rows, and it must see them itself)."""
    from nidaan.kit.db import _AFTER_COMMIT

    return f"cache:{family}" in session.info.get(_AFTER_COMMIT, {})


async def cached_json(session: AsyncSession, family: str, key: str) -> tuple[int | None, Any]:
    """``(generation, value)``: value None on a miss; generation None when the value must
    not be stored (the cache is unreachable, or this transaction changed the family)."""
    if changing(session, family):
        return None, None
    cache = get_cache()
    try:
        generation = await cache.generation(family)
    except Exception as exc:
        logger.warning("cache read failed: %s", type(exc).__name__)
        return None, None
    raw = await cache.get(f"{family}:{generation}:{key}")
    return generation, (json.loads(raw) if raw is not None else None)


async def store_json(
    family: str, generation: int, key: str, value: Any, ttl: float = DEFAULT_TTL_SECONDS
) -> None:
    await get_cache().set(f"{family}:{generation}:{key}", json.dumps(value), ttl)


async def invalidate(session: AsyncSession, family: str) -> None:
    """Write-through invalidation of ``family``: now, and again once ``session`` commits."""
    from nidaan.kit.db import add_after_commit_hook

    await _bump(family)

    async def after_commit() -> None:
        await _bump(family)

    add_after_commit_hook(session, f"cache:{family}", after_commit)


async def _bump(family: str) -> None:
    try:
        await get_cache().bump(family)
    except Exception as exc:  # entries then live until their ttl; said loudly
        logger.error("cache invalidation of %s failed: %s", family, type(exc).__name__)
