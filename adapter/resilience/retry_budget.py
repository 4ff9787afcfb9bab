"""A retry budget (after Finagle's RetryBudget and gRPC's retry throttling).

Within a sliding window, retries may add at most ``ratio`` of the calls made,
plus a small floor of ``min_retries_per_second`` so a quiet upstream can still
be retried. When an upstream fails hard, callers keep offering the same load
instead of ``max_attempts`` times it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["RetryBudget"]


class RetryBudget:
    """Counts calls and retries in ``buckets`` slices of ``window_seconds``.

    Example::

        budget = RetryBudget(ratio=0.2, min_retries_per_second=1.0, window_seconds=10.0)
        budget.record_call()
        if budget.try_spend():
            ...  # retry
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_retries_per_second: float = 1.0,
        window_seconds: float = 10.0,
        buckets: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self._reserve = min_retries_per_second * window_seconds
        self._slice = window_seconds / buckets
        self._clock = clock
        # Ring of [slice number, calls, retries].
        self._ring: list[list[int]] = [[-1, 0, 0] for _ in range(buckets)]

    def _bucket(self) -> list[int]:
        number = math.floor(self._clock() / self._slice)
        bucket = self._ring[number % len(self._ring)]
        if bucket[0] != number:
            bucket[:] = [number, 0, 0]
        return bucket

    def _totals(self) -> tuple[int, int]:
        oldest = math.floor(self._clock() / self._slice) - len(self._ring) + 1
        live = [b for b in self._ring if b[0] >= oldest]
        return sum(b[1] for b in live), sum(b[2] for b in live)

    def record_call(self) -> None:
        """One call was offered (its first attempt)."""
        self._bucket()[1] += 1

    def available(self) -> float:
        """Retries that may still be spent now."""
        calls, retries = self._totals()
        return self.ratio * calls + self._reserve - retries

    def try_spend(self) -> bool:
        """Takes one retry from the budget; False when it is spent."""
        # Epsilon: 0.2 * 5 calls must allow one whole retry despite float rounding.
        if self.available() < 1 - 1e-9:
            return False
        self._bucket()[2] += 1
        return True
