"""The event loop ``python -m adapter`` serves on (the ``event_loop`` setting).

uvloop runs the loop itself in C (libuv): the selector, the sockets' reads and
writes for the upstream calls, the scheduling of callbacks and timers, which
asyncio's own loop runs in Python. On the same calls that is 8% less CPU a
``GetDevice`` on grpc.aio and 15% less a cache hit (docs/benchmarks.md,
"Thirtieth stop"); earlier stops had measured no difference, before the ``h1``
transport and the helper threads' policy took the rest of a call's cost down.

uvloop's clock (``loop.time()``) reads whole milliseconds as of the start of the
loop's current iteration: enough for deadlines and the drainer's linger, and
durations are measured with ``time.perf_counter`` everywhere; what stamps an
instant another process or the vendor compares with (the rate limiter's slots)
reads ``time.monotonic()`` fresh (``adapter/resilience/layer.py``). asyncio's loop
stays one setting away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["EventLoopChoice", "run"]

logger = logging.getLogger(__name__)

EventLoopChoice = Literal["uvloop", "asyncio"]
_T = TypeVar("_T")


def run(main: Coroutine[Any, Any, _T], choice: EventLoopChoice) -> _T:
    """``asyncio.run(main)`` on the chosen loop. Without uvloop (a platform it has no
    wheel for) one WARNING says so, and asyncio's loop serves."""
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            logger.warning(
                'event_loop = "uvloop", but uvloop cannot be imported (%s): serving on '
                'asyncio\'s loop (install uvloop, or set event_loop = "asyncio")',
                exc,
            )
        else:
            logger.info("event loop: uvloop %s", getattr(uvloop, "__version__", "?"))
            return uvloop.run(main)
    logger.info("event loop: asyncio")
    return asyncio.run(main)
