"""Log lines that repeat: the first of each kind at once, then at most one per
interval, which says how many like it were held back.

Why: a line per failed call is what explains a failure, but in an outage every call
fails the same way. At thousands of calls a second the lines would be the outage's
largest cost (~30 µs a JSON line here, before the collector's share) and would bury
every other line. What is held back still counts in the metrics
(``rpc.server.duration`` by status code) and still has its span; the line that goes
out carries its own call's trace id. Written by hand: the logging module has no rate
limit, and no maintained library adds one that counts what it held back.

A burst that ends inside an interval is not left unsaid: when the interval is over
(a timer on the running event loop) the last line held back goes out, saying how
many like it there were, under its own call's context (so with its trace id);
:func:`flush_held_lines` sends every such line at once, at shutdown.

Example: ``lines.log(logging.WARNING, code, "%s -> %s: %s", path, code.name, message)``
logs once, then at most every ``interval`` seconds, as
``... -> UNAVAILABLE: ... (312 more like it in the last 10 s not logged)``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["DEFAULT_INTERVAL", "RepeatedLines", "flush_held_lines"]

#: What the adapter's repeated lines wait between two of a kind (and the default of
#: ``telemetry.failure_log_interval_seconds``).
DEFAULT_INTERVAL = 10.0

_LIVE: weakref.WeakSet[RepeatedLines] = weakref.WeakSet()


def flush_held_lines() -> None:
    """Every :class:`RepeatedLines` sends the last line it holds back of each kind now
    (the adapter's stop calls it, so a shutdown never swallows an outage's tail)."""
    for lines in list(_LIVE):
        lines.flush()


class _Held:
    """The last line held back of a kind, and how many were (updated in place: an
    outage holds back thousands a second)."""

    __slots__ = ("args", "context", "level", "msg", "times")

    def __init__(self, level: int, msg: str, args: tuple[Any, ...]) -> None:
        self.times = 1
        self.level, self.msg, self.args = level, msg, args
        self.context = contextvars.copy_context()


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
        self._held: dict[Hashable, _Held] = {}
        # kind -> the timer (and its loop) that sends its held line when the interval is over
        self._timers: dict[Hashable, tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle]] = {}
        _LIVE.add(self)

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
            held = self._held.get(kind)
            if held is None:
                self._held[kind] = _Held(level, msg, args)
            else:
                held.times += 1
                held.level, held.msg, held.args = level, msg, args
                held.context = contextvars.copy_context()
            self._send_later(kind, last + self._interval - now)
            return
        self._last[kind] = now
        held = self._held.pop(kind, None)
        self._cancel_timer(kind)
        if held is not None:
            msg += " (%d more like it in the last %.0f s not logged)"
            args = (*args, held.times, now - last)
        self._logger.log(level, msg, *args, stacklevel=2)

    def flush(self) -> None:
        """Sends the last held line of every kind now, with how many like it were held;
        drops those held on an event loop that has closed since (what ran there ended
        without its stop: a test's loop, not this process's)."""
        for kind in list(self._held):
            timer = self._timers.get(kind)
            if timer is not None and timer[0].is_closed():
                self.forget(kind)
            else:
                self._send_held(kind)

    def forget(self, kind: Hashable) -> None:
        """The next line of ``kind`` goes out at once (what was held back is dropped)."""
        self._last.pop(kind, None)
        self._held.pop(kind, None)
        self._cancel_timer(kind)

    def _send_later(self, kind: Hashable, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a thread, a synchronous test): flush() still sends it
            return
        timer = self._timers.get(kind)
        if timer is not None and timer[0] is loop:
            return  # set already by the first line held back since the last one sent
        self._cancel_timer(kind)  # one left on a loop that has stopped since
        # An empty context: the timer must not keep the first held call's span alive.
        handle = loop.call_later(delay, self._send_held, kind, context=contextvars.Context())
        self._timers[kind] = (loop, handle)

    def _cancel_timer(self, kind: Hashable) -> None:
        timer = self._timers.pop(kind, None)
        if timer is not None:
            timer[1].cancel()

    def _send_held(self, kind: Hashable) -> None:
        self._cancel_timer(kind)
        held = self._held.pop(kind, None)
        if held is None:
            return
        now = self._clock()
        since = now - self._last.get(kind, now)
        self._last[kind] = now
        held.context.run(
            self._logger.log,
            held.level,
            held.msg + " (the last of %d like it held back in the last %.0f s)",
            *held.args,
            held.times,
            since,
        )
