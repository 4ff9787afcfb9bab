"""The one backoff: full jitter, capped, reset after a healthy period (injected clock)."""

from __future__ import annotations

import random

import pytest

from adapter.resilience.backoff import Backoff, full_jitter

from ..manual_clock import ManualClock


def test_delays_stay_within_the_jittered_exponential_ceiling_and_the_cap() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(7))
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for ceiling in ceilings:
        delay = backoff.next()
        assert 0 <= delay <= ceiling
    # Full jitter spreads over the whole range, not around the step.
    spread = [
        full_jitter(3, initial=0.5, maximum=4.0, multiplier=2, rng=random.Random(i)) for i in range(200)
    ]
    assert min(spread) < 0.2 and max(spread) > 1.8 and max(spread) <= 2.0


def test_a_long_healthy_session_resets_the_steps() -> None:
    clock = ManualClock()
    backoff = Backoff(1.0, 64.0, healthy_after=30.0, rng=random.Random(1), clock=clock)
    for _ in range(6):
        backoff.next()
    assert backoff.attempt == 6
    backoff.healthy()  # the stream reached STREAMING
    clock.now += 31  # ... and streamed for 31 s before it dropped
    backoff.next()
    assert backoff.attempt == 1  # the drop waits at most `initial`, not the cap


def test_a_short_healthy_spell_does_not_reset() -> None:
    clock = ManualClock()
    backoff = Backoff(1.0, 64.0, healthy_after=30.0, rng=random.Random(1), clock=clock)
    for _ in range(4):
        backoff.next()
    backoff.healthy()
    clock.now += 5  # flapping: connected, dropped after 5 s
    backoff.next()
    assert backoff.attempt == 5


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)
    with pytest.raises(ValueError):
        Backoff(1, 2, multiplier=0.5)
