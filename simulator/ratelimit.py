"""Fixed-window rate limiting per credential, with per-window counts for tests.

Windows are numbered from the limiter's start: window ``n`` covers
``[start + n*window_s, start + (n+1)*window_s)``. A test can assert the simulator never served
more than the quota in any window with `max_served_in_any_window`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from simulator.wire import JsonObject


@dataclass
class WindowCount:
    """Requests of one credential in one window: served and refused (429)."""

    served: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class Decision:
    """The limiter's answer for one request."""

    allowed: bool
    limit: int | None
    remaining: int | None
    retry_after_s: int


class FixedWindowRateLimiter:
    """Allows `limit` requests per credential per window (`limit` None: unlimited)."""

    def __init__(
        self,
        limit: int | None,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._start = clock()
        self._counts: dict[str, dict[int, WindowCount]] = {}

    def current_window(self) -> int:
        """The number of the window `now` falls in."""
        return int((self._clock() - self._start) // self.window_s)

    def acquire(self, credential: str) -> Decision:
        """Counts one request of `credential` and says whether it may be served."""
        now = self._clock()
        window = int((now - self._start) // self.window_s)
        count = self._counts.setdefault(credential, {}).setdefault(window, WindowCount())
        window_end = self._start + (window + 1) * self.window_s
        retry_after = max(1, math.ceil(window_end - now))
        if self.limit is None:
            count.served += 1
            return Decision(True, None, None, retry_after)
        if count.served >= self.limit:
            count.rejected += 1
            return Decision(False, self.limit, 0, retry_after)
        count.served += 1
        return Decision(True, self.limit, self.limit - count.served, retry_after)

    def windows(self) -> dict[str, dict[int, WindowCount]]:
        """Counts by credential, then window number."""
        return {c: dict(w) for c, w in self._counts.items()}

    def max_served_in_any_window(self, credential: str | None = None) -> int:
        """The most requests served to one credential (or `credential`) in one window."""
        counts = [self._counts.get(credential, {})] if credential is not None else self._counts.values()
        return max((c.served for w in counts for c in w.values()), default=0)

    def to_json(self) -> JsonObject:
        """Settings and counts for the admin API."""
        return {
            "limit": self.limit,
            "window_s": self.window_s,
            "current_window": self.current_window(),
            "windows": {
                credential: {str(n): c.__dict__ for n, c in sorted(w.items())}
                for credential, w in self._counts.items()
            },
        }

    def reset(self) -> None:
        """Forgets all counts and restarts window numbering now."""
        self._counts.clear()
        self._start = self._clock()
