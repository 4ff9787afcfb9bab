"""The deadlines of the calls in flight, on one event loop timer.

Every upstream call runs under a deadline. ``asyncio.timeout_at`` arms a loop
timer for each call and cancels it when the call ends: on uvloop a libuv timer
handle made, started, stopped and closed a call, which cost ~14 µs of CPU a call
in the peer bench (~5% of a ``GetDevice``; ``python -m bench.peer.side_by_side``).
Calls rarely reach their deadline, so this keeps one timer for all of them,
armed for the earliest deadline in flight; it moves only when an earlier
deadline arrives or when it fires (then it expires what is due and re-arms for
the earliest left).

Each call still runs under the stdlib's own ``asyncio.Timeout``, entered without
a deadline; when its deadline passes, the timer reschedules it to now, and the
stdlib does what ``timeout_at`` does: the task is cancelled, ``TimeoutError``
leaves the block, a cancellation from elsewhere still leaves as
``CancelledError``. Written by hand because asyncio has no shared timer and
uvloop no cheaper one::

    timeout = timers.timeout(deadline)
    try:
        async with timeout:
            ...
    finally:
        timers.forget(timeout)
"""

from __future__ import annotations

import asyncio
import contextlib
import math

__all__ = ["DeadlineTimer"]


class DeadlineTimer:
    """Deadlines of the calls in flight on one loop, on one timer.

    Used from one event loop at a time: a timer in use on one loop is not shared
    with another (a call from a second loop gets a timer of its own, as with
    ``asyncio.timeout_at``).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[asyncio.Timeout, float] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = math.inf

    def timeout(self, deadline: float) -> asyncio.Timeout:
        """A ``Timeout`` to enter at once (``async with``), that expires at
        ``deadline`` (the running loop's clock); hand it to :meth:`forget` when the
        block has ended."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._pending and self._loop is not None and self._loop.is_running():
                return asyncio.timeout_at(deadline)  # another loop's calls are in flight
            self._reset(loop)
        timeout = asyncio.Timeout(None)
        self._pending[timeout] = deadline
        if deadline < self._armed_for:
            self._arm(loop, deadline)
        return timeout

    def forget(self, timeout: asyncio.Timeout) -> None:
        """The block of ``timeout`` has ended (the timer is left armed: moving it
        would cost what it saves; it re-arms when it fires)."""
        self._pending.pop(timeout, None)

    @property
    def in_flight(self) -> int:
        """Deadlines not yet forgotten nor expired."""
        return len(self._pending)

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._loop, self._pending, self._handle, self._armed_for = loop, {}, None, math.inf

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = when
        self._handle = loop.call_at(when, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        # Due: what the timer was armed for, even when the loop runs it a little
        # early (uvloop's timers count whole milliseconds), as asyncio's own would.
        now = loop.time()
        due = max(now, self._armed_for)
        self._handle, self._armed_for = None, math.inf
        pending = self._pending
        expired = [timeout for timeout, when in pending.items() if when <= due]
        for timeout in expired:
            del pending[timeout]
        if pending:
            self._arm(loop, min(pending.values()))
        for timeout in expired:
            # RuntimeError: its block never began, or has ended and is not forgotten yet.
            with contextlib.suppress(RuntimeError):
                timeout.reschedule(now)  # the stdlib's expiry: the task cancelled, TimeoutError
