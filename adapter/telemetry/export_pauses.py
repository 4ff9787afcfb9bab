"""Short sleeps in the span export thread, so the event loop beside it is not kept waiting.

The export thread encodes a batch of up to 512 spans in one go (~7.5 µs a span, ~4 ms).
On a core it shares with the event loop's thread it holds the GIL and the core all that
time: neither a shorter GIL switch interval, a lower nice value nor ``sched_yield`` /
``time.sleep(0)`` handed them over (docs/benchmarks.md, twenty-third and twenty-fifth
stops), because the thread never blocks, so the loop's thread is not run to take the GIL.
A real sleep blocks it: every ``every`` spans the encoder calls :meth:`ExportPauses.pause`,
which sleeps ``seconds``, and the loop gets the core and the GIL at once.

Only while the loop is not busy: once a pause took much longer than it asked (the thread
waited for a busy loop to be forced off the GIL, up to the 5 ms switch interval), the rest
of that export is encoded in one go, as before, since a busy loop's calls wait on each
other more than on the export, and each such pause cost it a forced hand-over (~1% of a
call's CPU at 64 calls in flight, measured). And at most ``budget_seconds`` of wall time
from :meth:`ExportPauses.start`: an export that fell behind would let the processor's
queue fill and drop spans. Never sleeps on a thread that runs an event loop (an export run
from the loop's thread, which the SDK's processor does not do). One instance serves one
export at a time: the processor's exports (its worker's and a ``force_flush``'s) hold its
export lock. Written by hand: no library paces a Python thread against the GIL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["ExportPauses"]

#: A pause that took longer than this many times what it asked, plus this slack (a sleep
#: overshoots by Linux's 50 µs timer slack; an idle-ish loop runs a call or two before it
#: blocks and lets the GIL go), found the loop busy: a busy one keeps the GIL until the
#: switch interval (5 ms) forces it out.
_BUSY_FACTOR = 4
_BUSY_SLACK_SECONDS = 0.0006


class ExportPauses:
    """``start()`` once an export begins; ``pause()`` between groups of ``every`` spans."""

    def __init__(
        self,
        seconds: float,
        *,
        every: int = 32,
        budget_seconds: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.seconds = seconds
        self.every = every
        self._budget = budget_seconds
        self._clock = clock
        self._sleep = sleep
        self._until = 0.0  # no pause before start()

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def start(self) -> None:
        """An export begins: pauses are allowed for ``budget_seconds`` from now."""
        if not self.enabled or _runs_a_loop():
            self._until = 0.0
            return
        self._until = self._clock() + self._budget

    def pause(self) -> None:
        if not self._until:
            return
        began = self._clock()
        if began >= self._until:
            self._until = 0.0
            return
        self._sleep(self.seconds)
        if self._clock() - began > _BUSY_FACTOR * self.seconds + _BUSY_SLACK_SECONDS:
            # The GIL came back late: the loop is busy, and a busy loop gains little from
            # pauses (its calls wait on each other) while each costs it a forced hand-over.
            self._until = 0.0


def _runs_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
