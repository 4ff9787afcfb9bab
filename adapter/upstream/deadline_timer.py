"""The deadlines of the calls in flight, on one event loop timer.

Every upstream call runs under a deadline. ``asyncio.timeout_at`` arms a loop
timer for each call and cancels it when the call ends (on uvloop a libuv timer
handle made, started, stopped and closed), and enters and leaves a ``Timeout``
(two coroutines and four Python calls): ~14 µs of CPU a call in the peer bench,
~5% of a ``GetDevice`` (``python -m bench.peer.side_by_side``). Calls rarely
reach their deadline, so this keeps one timer for all of them, armed for the
earliest deadline in flight; it moves only when an earlier deadline arrives or
when it fires (then it expires what is due and re-arms for the earliest left).

Expiry is ``asyncio.Timeout``'s, step for step (Python 3.11's ``timeouts.py``):
the task is cancelled; the ``CancelledError`` that reaches the block is the
deadline's when ``uncancel()`` brings the task's count back to what it was at
the start (else a cancellation from elsewhere came too, and it stays a
cancellation); a block that ends otherwise after its expiry still takes its
cancel request back. Written by hand because asyncio has no shared timer and
uvloop no cheaper one::

    deadline = timers.start(loop.time() + 2.0)
    try:
        ...
    except asyncio.CancelledError:
        if timers.expired(deadline):
            raise TimeoutError from None
        raise
    finally:
        timers.forget(deadline)
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Deadline", "DeadlineTimer"]

_RUNNING, _EXPIRING, _DONE = 0, 1, 2


class Deadline:
    """One block's deadline: what :meth:`DeadlineTimer.start` returns."""

    __slots__ = ("_cancelling", "_handle", "_state", "_task", "when")

    def __init__(self, when: float, task: asyncio.Task[object]) -> None:
        self.when = when
        self._task = task
        self._cancelling = task.cancelling()
        self._state = _RUNNING
        self._handle: asyncio.TimerHandle | None = None  # its own timer (another loop's in use)

    def _expire(self) -> None:
        if self._state is _RUNNING:
            self._state = _EXPIRING
            self._task.cancel()


class DeadlineTimer:
    """Deadlines of the calls in flight on one loop, on one timer.

    Used from one event loop at a time: while its timer serves calls on one
    loop, a call on another gets a timer of its own (as under ``timeout_at``).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[Deadline] = set()  # each knows its own ``when``
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = math.inf

    def start(self, when: float) -> Deadline:
        """The current task's deadline, at ``when`` (the running loop's clock)."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline needs a task")
        deadline = Deadline(when, task)
        if loop is not self._loop:
            if self._pending and self._loop is not None and self._loop.is_running():
                deadline._handle = loop.call_at(when, deadline._expire)
                return deadline
            self._reset(loop)
        self._pending.add(deadline)
        if when < self._armed_for:
            self._arm(loop, when)
        return deadline

    def expired(self, deadline: Deadline) -> bool:
        """In an ``except CancelledError``: True when the cancellation is
        ``deadline``'s own (raise the timeout instead), False when it came from
        elsewhere (let it propagate)."""
        if deadline._state is not _EXPIRING:
            return False
        deadline._state = _DONE
        return deadline._task.uncancel() <= deadline._cancelling

    def forget(self, deadline: Deadline) -> None:
        """``deadline``'s block has ended (the shared timer is left armed: moving it
        would cost what it saves; it re-arms when it fires)."""
        self._pending.discard(deadline)
        if deadline._handle is not None:
            deadline._handle.cancel()
        if deadline._state is _EXPIRING:  # expired, then ended before the cancellation reached it
            deadline._task.uncancel()
        deadline._state = _DONE

    @property
    def in_flight(self) -> int:
        """Deadlines not yet forgotten nor expired."""
        return len(self._pending)

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._loop, self._pending, self._handle, self._armed_for = loop, set(), None, math.inf

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle, self._armed_for = None, math.inf
        if math.isfinite(when):  # (an endless deadline: nothing to arm)
            self._armed_for = when
            self._handle = loop.call_at(when, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        # Due: what the timer was armed for, even when the loop runs it a little
        # early (uvloop's timers count whole milliseconds), as asyncio's own would.
        due = max(loop.time(), self._armed_for)
        self._handle, self._armed_for = None, math.inf
        pending = self._pending
        expired = [deadline for deadline in pending if deadline.when <= due]
        pending.difference_update(expired)
        if pending:
            self._arm(loop, min(deadline.when for deadline in pending))
        for deadline in expired:
            deadline._expire()
