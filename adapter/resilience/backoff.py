"""The one backoff of the adapter: capped exponential steps with full jitter, reset
after a healthy period.

"Full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): each delay
is uniform in ``[0, min(maximum, initial * multiplier**(n-1))]``, so callers that
failed together do not come back together, and no delay exceeds the cap.

A long-lived loop (a WebSocket stream, a delivery loop, a supervised task) calls
:meth:`Backoff.healthy` when it is working again; when it next fails after having
been healthy for ``healthy_after`` seconds, the steps start over from ``initial``
instead of waiting the maximum after one drop in a day.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["Backoff", "full_jitter"]


def full_jitter(
    attempt: int, *, initial: float, maximum: float, multiplier: float, rng: random.Random
) -> float:
    """Delay before retry number ``attempt`` (1-based)."""
    ceiling = min(maximum, initial * multiplier ** max(attempt - 1, 0))
    return rng.uniform(0, ceiling)


class Backoff:
    """Stateful delays for one loop. ``clock`` is injectable for tests.

    Example::

        backoff = Backoff(0.5, 30.0, healthy_after=60.0)
        while True:
            try:
                await run_session(on_healthy=backoff.healthy)
            except ConnectionError:
                await asyncio.sleep(backoff.next())
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        multiplier: float = 2.0,
        healthy_after: float = 30.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("0 < initial <= maximum is required")
        if multiplier < 1:
            raise ValueError("multiplier must be >= 1")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.healthy_after = healthy_after
        self._rng = rng or random.Random()
        self._clock = clock
        self.attempt = 0
        self._healthy_since: float | None = None

    def healthy(self) -> None:
        """The loop works again (a session streams, a delivery succeeded)."""
        if self._healthy_since is None:
            self._healthy_since = self._clock()

    def next(self) -> float:
        """The delay before the next try; resets first when the loop had been healthy
        for ``healthy_after`` seconds."""
        since, self._healthy_since = self._healthy_since, None
        if since is not None and self._clock() - since >= self.healthy_after:
            self.attempt = 0
        self.attempt += 1
        return full_jitter(
            self.attempt,
            initial=self.initial,
            maximum=self.maximum,
            multiplier=self.multiplier,
            rng=self._rng,
        )

    def reset(self) -> None:
        self.attempt = 0
        self._healthy_since = None
