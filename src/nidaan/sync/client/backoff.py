"""Exponential backoff with jitter for retryable sync failures.

The ceiling doubles from 5 s to 5 min; each delay is drawn uniformly between the floor and the
ceiling ("full jitter" above a floor), so a hundred centres coming back after an outage spread
out instead of knocking together, and none retries faster than every 5 s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 5.0
    cap: float = 300.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        exponent = max(self.failures - 1, 0)
        # min() before the power would overflow after a long outage.
        return min(self.cap, self.base * 2 ** min(exponent, 32))

    def next_delay(self) -> float:
        """Count a failure and return how long to wait before the next attempt."""
        self.failures += 1
        return self.rng.uniform(self.base, self.ceiling())

    def reset(self) -> None:
        self.failures = 0
