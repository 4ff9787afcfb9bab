"""Cancels the handler of a call whose caller left, as grpc.aio does.

grpc.aio cancels a call's handler, and with it the upstream request, when the caller
resets its stream (it cancelled, or its client gave up). pyvoy gives no wake-up for
that, but once a call's body is read its ``receive()`` answers at once (an empty
body) while the caller is there, and ``http.disconnect`` after it left (measured,
pyvoy 1.3.0). So a watch asks the calls that have run for a while, every
``interval``, and cancels those whose caller is gone: a fast call is never asked,
and the watch ends once no call runs (it is started again by the next one).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["AbandonedCalls", "Receive"]

#: ASGI's ``receive`` (the front's calls hand theirs to the watch).
Receive = Callable[[], Awaitable[dict[str, Any]]]
_T = TypeVar("_T")

logger = logging.getLogger(__name__)


class AbandonedCalls:
    """``await run(handler_call, receive)`` in place of ``await handler_call``; when it
    raises CancelledError, ``forget_current()`` says whether this watch cancelled it."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        #: handlers running: their call's ``receive`` and when they began
        self._running: dict[asyncio.Task[Any], tuple[Receive, float]] = {}
        # weak: a handler that swallowed its CancelledError leaves nothing behind here
        self._cancelled: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._watch: asyncio.Task[None] | None = None

    async def run(self, call: Awaitable[_T], receive: Receive) -> _T:
        task = asyncio.current_task()
        if task is None:
            return await call
        self._running[task] = (receive, time.monotonic())
        if self._watch is None or self._watch.done():
            self._watch = asyncio.ensure_future(self._watching())
        try:
            return await call
        finally:
            del self._running[task]

    def forget_current(self) -> bool:
        """True if the running task's CancelledError is this watch's (then undone, so
        the task can end normally); False if someone else cancelled it."""
        task = asyncio.current_task()
        if task is None or task not in self._cancelled:
            return False
        self._cancelled.discard(task)
        task.uncancel()
        return True

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)

    async def _watching(self) -> None:
        while self._running:
            await asyncio.sleep(self._interval)
            asked_before = time.monotonic() - self._interval
            for task, (receive, began) in list(self._running.items()):
                if began > asked_before or task not in self._running:
                    continue
                try:
                    message = await receive()
                except Exception:  # the watch must outlive any one call's failure
                    logger.exception("asking whether a call's caller left failed")
                    continue
                if message.get("type") == "http.disconnect" and task in self._running:
                    self._cancelled.add(task)
                    task.cancel()
