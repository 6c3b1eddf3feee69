"""Backoff: jittered delays between 5 s and a ceiling that doubles up to 5 min."""

from __future__ import annotations

import random

from nidaan.sync.client.backoff import Backoff


def test_delays_stay_within_the_doubling_ceiling_and_the_cap() -> None:
    backoff = Backoff(rng=random.Random(1))
    for failure in range(1, 40):
        ceiling = min(300.0, 5.0 * 2 ** (failure - 1))
        delay = backoff.next_delay()
        assert 5.0 <= delay <= ceiling
    assert backoff.ceiling() == 300.0


def test_delays_are_jittered() -> None:
    delays = set()
    for seed in range(20):
        backoff = Backoff(rng=random.Random(seed))
        for _ in range(6):
            delay = backoff.next_delay()
        delays.add(round(delay, 3))
    assert len(delays) > 15  # clients back off at different moments, not in lockstep
    assert all(5.0 <= d <= 160.0 for d in delays)


def test_the_first_retry_is_after_five_seconds_and_success_resets() -> None:
    backoff = Backoff(rng=random.Random(3))
    assert backoff.next_delay() == 5.0
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() == 5.0
