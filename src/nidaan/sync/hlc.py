"""Hybrid logical clocks (Kulkarni et al.), shared by the server and the reference client.

A timestamp is (wall ms, counter, node). It respects causality, stays close to real time and
serialises as a string that sorts like the tuple: ``"000001764140000000-00000-<node>"``. The
node (a client id, or ``"server"``) breaks ties, so two clients never compare equal.

Own code rather than a library: the HLC libraries on PyPI are unmaintained, and the rules fit
in a screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

WALL_DIGITS = 15
COUNTER_DIGITS = 5
MAX_COUNTER = 10**COUNTER_DIGITS - 1


class HLCError(ValueError):
    """A malformed timestamp or a counter that ran out."""


@dataclass(frozen=True, order=True)
class HLC:
    wall_ms: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.wall_ms:0{WALL_DIGITS}d}-{self.counter:0{COUNTER_DIGITS}d}-{self.node}"

    @classmethod
    def parse(cls, text: str) -> HLC:
        parts = text.split("-", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or not parts[2]:
            raise HLCError(f"not a hybrid logical clock value: {text!r}")
        return cls(int(parts[0]), int(parts[1]), parts[2])

    def with_node(self, node: str) -> HLC:
        return HLC(self.wall_ms, self.counter, node)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Clock:
    """One node's clock. ``offset_ms`` corrects a device clock by the server's measured time."""

    def __init__(
        self, node: str, *, last: HLC | None = None, physical: Callable[[], int] = now_ms
    ) -> None:
        self.node = node
        self.offset_ms = 0
        self._physical = physical
        self._wall = last.wall_ms if last else 0
        self._counter = last.counter if last else 0

    def physical_ms(self) -> int:
        return self._physical() + self.offset_ms

    @property
    def last(self) -> HLC:
        return HLC(self._wall, self._counter, self.node)

    def tick(self) -> HLC:
        """A timestamp for a local event (a write)."""
        physical = self.physical_ms()
        if physical > self._wall:
            self._wall, self._counter = physical, 0
        else:
            self._bump()
        return self.last

    def receive(self, remote: HLC) -> HLC:
        """Advance past a timestamp seen from another node."""
        physical = self.physical_ms()
        wall = max(self._wall, remote.wall_ms, physical)
        if wall == self._wall == remote.wall_ms:
            self._counter = max(self._counter, remote.counter)
            self._bump()
        elif wall == self._wall:
            self._bump()
        elif wall == remote.wall_ms:
            self._wall, self._counter = wall, remote.counter
            self._bump()
        else:
            self._wall, self._counter = wall, 0
        return self.last

    def _bump(self) -> None:
        if self._counter >= MAX_COUNTER:
            raise HLCError("hybrid logical clock counter overflow")
        self._counter += 1
