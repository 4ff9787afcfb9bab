"""Log lines that repeat: the first of each kind at once, then at most one per
interval, which says how many like it were held back.

Why: a line per failed call is what explains a failure, but in an outage every call
fails the same way. At thousands of calls a second the lines would be the outage's
largest cost (~30 µs a JSON line here, before the collector's share) and would bury
every other line. What is held back still counts in the metrics
(``rpc.server.duration`` by status code) and still has its span; the line that goes
out carries its own call's trace id. Written by hand: the logging module has no rate
limit, and no maintained library adds one that counts what it held back.

Example: ``lines.log(logging.WARNING, code, "%s -> %s: %s", path, code.name, message)``
logs once, then at most every ``interval`` seconds, as
``... -> UNAVAILABLE: ... (312 more like it in the last 10 s not logged)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["DEFAULT_INTERVAL", "RepeatedLines"]

#: What the adapter's repeated lines wait between two of a kind (and the default of
#: ``telemetry.failure_log_interval_seconds``).
DEFAULT_INTERVAL = 10.0


class RepeatedLines:
    """Throttles ``logger``'s lines per kind (any hashable); ``interval`` 0 logs every
    line. Kinds beyond ``max_kinds`` are logged every time (never an unbounded table)."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_kinds: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._max_kinds = max_kinds
        self._clock = clock
        self._last: dict[Hashable, float] = {}  # kind -> when its last line went out
        self._held: dict[Hashable, int] = {}

    def log(self, level: int, kind: Hashable, msg: str, *args: Any) -> None:
        if not self._logger.isEnabledFor(level):
            return
        if self._interval <= 0 or self._logger.isEnabledFor(logging.DEBUG):  # debugging: every line
            self._logger.log(level, msg, *args, stacklevel=2)
            return
        now = self._clock()
        last = self._last.get(kind)
        if last is None:
            if len(self._last) < self._max_kinds:
                self._last[kind] = now
            self._logger.log(level, msg, *args, stacklevel=2)
            return
        if now - last < self._interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        if held:
            msg += " (%d more like it in the last %.0f s not logged)"
            args = (*args, held, now - last)
        self._logger.log(level, msg, *args, stacklevel=2)

    def forget(self, kind: Hashable) -> None:
        """The next line of ``kind`` goes out at once (what was held back is dropped)."""
        self._last.pop(kind, None)
        self._held.pop(kind, None)
