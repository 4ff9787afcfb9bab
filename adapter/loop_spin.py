"""Keeping the event loop polling for a moment instead of sleeping: spin-then-park.

asyncio's loop and uvloop sleep in the poller as soon as nothing is ready. On a
virtual machine whose idle vCPUs halt, the wake-up when the awaited event lands costs
~0.15-0.25 ms and cold caches (docs/benchmarks.md, thirty-sixth and thirty-ninth
stops). While a :class:`LoopSpin` is armed the loop keeps one callback ready, so it
polls its sockets without blocking, until the subclass says the wait is over or
``seconds`` have passed; then it sleeps as before. This is the idle strategy of Go's
scheduler (spinning threads before they park) and of Aeron's ``BackoffIdleStrategy``:
CPU traded for latency, bounded, and only while the loop has nothing else to do.
Written here because no library does it for asyncio (``SO_BUSY_POLL`` needs a device
queue to poll; loopback and most virtual NICs have none).

The two spins: :class:`adapter.upstream.answer_spin.AnswerSpin` (while one upstream
answer is due) and :class:`adapter.server.reply_spin.ReplySpin` (after a lone call's
reply, while the next call is due).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["LoopSpin"]


class LoopSpin:
    """The polling itself: :meth:`_arm` starts or extends a spin; each poll asks
    :meth:`_still_waiting` and runs :meth:`_between_polls`."""

    __slots__ = ("_clock", "_seconds", "_spinning", "_until")

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self._seconds = seconds
        self._clock = clock
        self._until = 0.0
        self._spinning = False

    @property
    def spinning(self) -> bool:
        """A spin is under way (its next poll is scheduled)."""
        return self._spinning

    def _arm(self, now: float, loop: asyncio.AbstractEventLoop) -> None:
        """Polls until ``now + seconds`` at most (a spin under way is extended)."""
        self._until = now + self._seconds
        if not self._spinning:
            self._spinning = True
            loop.call_soon(self._poll, loop)

    def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._still_waiting() and self._clock() < self._until:
            self._between_polls()
            loop.call_soon(self._poll, loop)
        else:
            self._spinning = False

    def _still_waiting(self) -> bool:
        """Whether what the spin waits for has still not come."""
        raise NotImplementedError

    def _between_polls(self) -> None:
        """Runs at each poll (nothing by default)."""
