"""Readable numbers handed out from blocks reserved per process (MRNs on the hot path).

``sequences.next_value`` draws each number in a short transaction of its own on the
autonomous pool: four round trips on a second connection for every registration. Here a
process reserves ``block`` numbers of a scope at once (one such draw, through
``next_value``) and hands them out from memory, so most calls cost nothing.

The price, as with ``next_value``: numbers are unique but not gapless, and across processes
not in time order (each process works through its own block). Numbers a process had reserved
but not used when it stops are a gap. Use it only for identifiers where that is fine.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.kit.db import autonomous_engine
from nidaan.kit.sequences import next_value

#: Numbers reserved per draw (at most this many are lost when a process stops).
BLOCK = 16

# (database, organisation, scope) -> [next unused, end (exclusive)]
_blocks: dict[tuple[str, uuid.UUID, str], list[int]] = {}
# The draw under way per key: calls that find the block used up wait for it instead of each
# drawing a block of their own (under 50 concurrent registrations, a used-up block sent a
# dozen draws at once to queue on the same sequence row, each then serving a single number).
_drawing: dict[tuple[str, uuid.UUID, str], asyncio.Future[None]] = {}


async def next_from_block(
    session: AsyncSession, organisation_id: uuid.UUID, scope: str, *, block: int = BLOCK
) -> int:
    """The next number of ``scope`` from this process's block, drawing a new block when the
    current one is used up."""
    key = (autonomous_engine(session).url.render_as_string(), organisation_id, scope)
    loop = asyncio.get_running_loop()
    while True:
        current = _blocks.get(key)
        if current is not None and current[0] < current[1]:
            value = current[0]
            current[0] += 1
            return value
        drawing = _drawing.get(key)
        if drawing is not None and drawing.get_loop() is loop:
            await asyncio.wait({drawing})  # never cancels the draw itself; then look again
            continue
        done = _drawing[key] = loop.create_future()
        try:
            first = await next_value(session, organisation_id, scope, count=block)
        finally:
            # On failure the waiters look again and draw for themselves.
            if _drawing.get(key) is done:
                del _drawing[key]
            done.set_result(None)
        _blocks[key] = [first + 1, first + block]
        return first
