"""What every resilience layer shares: it is an
:class:`~adapter.upstream.caller.UpstreamCaller` wrapping another one."""

from __future__ import annotations

import time
from typing import TypeVar

from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse

__all__ = ["CallerLayer", "find_layer"]

L = TypeVar("L", bound="CallerLayer")


class CallerLayer:
    """Delegates everything to ``inner``; subclasses override :meth:`send`."""

    def __init__(self, inner: UpstreamCaller) -> None:
        self.inner = inner
        self.name = inner.name

    @property
    def default_timeout(self) -> float:
        return self.inner.default_timeout

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        return await self.inner.send(request, deadline=deadline)

    async def aclose(self) -> None:
        await self.inner.aclose()

    @staticmethod
    def now() -> float:
        """``time.monotonic()``: the clock deadlines are expressed on (asyncio's loop's
        own; uvloop's reads the same clock in whole milliseconds, as of the start of the
        loop's current iteration). Read fresh, not from the loop: a slot the rate limiter
        frees a window after a request ended must be stamped when it ended, not up to an
        iteration earlier, or a replica could start a request a few ms too soon for the
        vendor's sliding window (seen under uvloop: 61 requests in a window of 60)."""
        return time.monotonic()


def find_layer(caller: UpstreamCaller, kind: type[L]) -> L | None:
    """The first layer of type ``kind`` in a caller stack (for metrics and tests)."""
    current: object = caller
    while current is not None:
        if isinstance(current, kind):
            return current
        current = getattr(current, "inner", None)
    return None
