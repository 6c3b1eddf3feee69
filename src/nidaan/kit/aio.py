"""Small asyncio helpers."""

from __future__ import annotations

import asyncio


async def pause_every(index: int, every: int = 16) -> None:
    """In a long CPU-bound loop, let the event loop run other tasks every ``every`` items.

    The interfaces process lands results in the same event loop that acknowledges analyzer
    frames; a batch of a few hundred results is tens of milliseconds of Python, during which
    every analyzer would wait for its ACK.
    """
    if index % every == every - 1:
        await asyncio.sleep(0)
