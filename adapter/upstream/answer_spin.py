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
The polling itself is :class:`adapter.loop_spin.LoopSpin`'s; this spin does not yield
the core at each poll, since the answer comes through the loop's own socket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from adapter.loop_spin import LoopSpin

__all__ = ["AnswerSpin"]


class AnswerSpin(LoopSpin):
    """Counts the exchanges waiting for an answer; spins the loop while one waits alone."""

    __slots__ = ("_last_wait", "_since", "_waiting")

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(seconds, clock=clock)
        self._waiting = 0
        self._since = 0.0  # when the lone exchange began to wait
        self._last_wait = 0.0  # how long the last lone exchange waited

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
                self._arm(now, loop)

    def answered(self) -> None:
        """That exchange ended: answered, failed or cancelled."""
        if self._waiting == 1 and self._seconds > 0:
            self._last_wait = self._clock() - self._since
        self._waiting -= 1

    def _still_waiting(self) -> bool:
        return self._waiting == 1
