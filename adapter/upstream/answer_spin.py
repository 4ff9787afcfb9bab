"""Polling, not sleeping, for a moment while the only upstream answer is due.

On a virtual machine whose idle vCPUs halt (``haltpoll`` off, as on this project's
machines), a loop that sleeps in ``epoll_wait`` while its one upstream request is
answered pays the vCPU's wake-up when the answer lands: ~0.15 ms a call at low
load (docs/benchmarks.md, "Thirty-sixth stop"), where a call with no upstream hop
pays one wake-up less. So while exactly one exchange waits, the loop keeps a
callback ready, which makes it poll its sockets without blocking, for at most
``seconds``; then it sleeps as before: the spin-then-park idle strategy of Go's
scheduler and of Aeron's ``BackoffIdleStrategy``.

What it costs: CPU, at most ``seconds`` an exchange, and only while nothing else
runs. With two or more exchanges waiting the loop has other work and does not
spin, and after an answer that took longer than ``seconds`` (a distant upstream)
it does not spin again until one comes within it: every lone wait is timed, spun
or not. ``upstream.answer_spin_microseconds`` sets it (0: off; docs/configuration.md).

Written here because no library does this for asyncio: asyncio's loop and uvloop
sleep in the poller as soon as nothing is ready, and ``SO_BUSY_POLL`` needs a
device queue to poll (loopback and most virtual NICs have none).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["AnswerSpin"]


class AnswerSpin:
    """Counts the exchanges waiting for an answer; spins the loop while one waits alone."""

    __slots__ = ("_clock", "_last_wait", "_seconds", "_since", "_spinning", "_until", "_waiting")

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self._seconds = seconds
        self._clock = clock
        self._waiting = 0
        self._since = 0.0  # when the lone exchange began to wait
        self._last_wait = 0.0  # how long the last lone exchange waited
        self._until = 0.0
        self._spinning = False

    @property
    def spinning(self) -> bool:
        """A spin is under way (its next poll is scheduled)."""
        return self._spinning

    @property
    def waiting_now(self) -> int:
        """Exchanges whose answer is due."""
        return self._waiting

    def waiting(self, loop: asyncio.AbstractEventLoop) -> None:
        """An exchange's request is written and its answer is due."""
        self._waiting += 1
        if self._waiting == 1 and self._seconds > 0:
            now = self._since = self._clock()
            if self._last_wait <= self._seconds:
                self._until = now + self._seconds
                if not self._spinning:
                    self._spinning = True
                    loop.call_soon(self._tick, loop)

    def answered(self) -> None:
        """That exchange ended: answered, failed or cancelled."""
        if self._waiting == 1 and self._seconds > 0:
            self._last_wait = self._clock() - self._since
        self._waiting -= 1

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._waiting == 1 and self._clock() < self._until:
            loop.call_soon(self._tick, loop)
        else:
            self._spinning = False
