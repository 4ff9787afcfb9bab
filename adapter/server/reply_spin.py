"""Polling, not sleeping, for a moment after a lone call's reply, while the next call is due.

One call at a time, each call's request reaches the event loop through grpc's own
threads (grpc core's I/O and the completion-queue poller, which wakes the loop), and
the loop sleeps in the poller between calls. On a virtual machine whose idle vCPUs
halt, that sleep costs the next call the vCPU's wake-up and cold caches: at one call
in flight a ``GetDevice``'s p50 fell from 0.72 to 0.53 ms with this spin, side by side
(docs/benchmarks.md, "Thirty-ninth stop"). So once the last call in flight has
replied, and it came alone, the loop keeps a callback ready (it polls its sockets
without blocking) for at most ``seconds``, and each poll gives the core to any other
thread of the process that is ready to run (``sched_yield``): grpc's threads run
``SCHED_BATCH`` (:mod:`adapter.helper_threads`), which never preempts the loop, and
the next call's request reaches the loop only through them. A spin without the
yield starved them and made the next call later, not sooner (measured).

What it costs: CPU while the process would otherwise be idle, at most ``seconds`` a
reply, and only at low concurrency: a reply after a busy stretch in which two or more
calls overlapped does not spin (those calls wake the loop often enough), nor one whose
next call had started within ``MIN_GAP_SECONDS`` of the last reply (it was already
queued, as cache hits at 16 in flight are: their handlers never overlap, yet the loop
is busy; spinning there read 0.94x the ceiling a core in a headline run, against
1.09-1.13x without), and after a gap between calls longer than ``seconds`` (sporadic
traffic) it does not spin again until a call comes within it: every gap is timed,
spun or not. ``grpc.reply_spin_microseconds`` sets it (0: off; docs/configuration.md);
only on grpc.aio's front (behind Envoy the next call does not come through grpc's
threads, and it measured no gain there).

The polling itself is :class:`adapter.loop_spin.LoopSpin`'s, as for
:class:`adapter.upstream.answer_spin.AnswerSpin` (the wait on an upstream's answer,
which needs no other thread and so does not yield).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from adapter.loop_spin import LoopSpin

__all__ = ["MIN_GAP_SECONDS", "ReplySpin"]

#: A gap between one call's end and the next call's start shorter than this means the
#: next call was already waiting on the loop: the loop was busy, not about to sleep.
#: One call at a time the gaps measured 370-2,000 µs here (a reply through grpc's
#: threads, the client's turn, the next request back).
MIN_GAP_SECONDS = 50e-6


class ReplySpin(LoopSpin):
    """Counts the calls in flight; after a lone call ends, spins (yielding) until the next starts."""

    __slots__ = (
        "_idle_since",
        "_in_flight",
        "_last_gap",
        "_peak",
        "_started",
        "_starts_when_armed",
        "_yield_core",
    )

    def __init__(
        self,
        seconds: float,
        *,
        clock: Callable[[], float] = time.perf_counter,
        yield_core: Callable[[], None] = os.sched_yield,
    ) -> None:
        super().__init__(seconds, clock=clock)
        self._yield_core = yield_core
        self._in_flight = 0
        self._started = 0  # calls started, ever: a spin ends once another has
        self._starts_when_armed = 0
        self._peak = 0  # the most calls in flight at once since the loop was last idle
        self._idle_since = 0.0  # when the last call in flight ended (0: none yet)
        self._last_gap = MIN_GAP_SECONDS  # from then to the next call's start (the first: may spin)

    @property
    def in_flight(self) -> int:
        """Calls started and not yet ended."""
        return self._in_flight

    def started(self) -> None:
        """A call began (its handler runs)."""
        if self._in_flight == 0 and self._idle_since and self._seconds > 0:
            self._last_gap = self._clock() - self._idle_since
        self._in_flight += 1
        self._started += 1
        if self._in_flight > self._peak:
            self._peak = self._in_flight

    def ended(self) -> None:
        """That call ended (replied, failed or cancelled); called on the event loop."""
        self._in_flight -= 1
        if self._in_flight or self._seconds <= 0:
            return
        now = self._idle_since = self._clock()
        lone, self._peak = self._peak <= 1, 0
        if lone and MIN_GAP_SECONDS <= self._last_gap <= self._seconds:
            self._starts_when_armed = self._started
            self._arm(now, asyncio.get_running_loop())

    def _still_waiting(self) -> bool:
        # Until the next call starts (even one that ended since: a cache hit ends
        # within the turn it starts in).
        return self._started == self._starts_when_armed

    def _between_polls(self) -> None:
        self._yield_core()
