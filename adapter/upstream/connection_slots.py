"""How many connections the ``h1`` transport may use at once.

``asyncio.Semaphore`` does this, and costs seven Python calls each time it is taken
and given back uncontended (``async with``: ``__aenter__``, ``acquire``, ``locked``
and its generator, ``__aexit__``, ``release``, ``_wake_up_next``): 3.5% of a
``GetDevice``'s CPU in place (docs/benchmarks.md, "Thirty-sixth stop"). Here the
uncontended take is one plain call and no coroutine, and the rest is the
semaphore's contract: callers beyond the bound wait first come, first served, a
slot is handed to the next waiter directly, and a waiter cancelled as it was
handed one passes it on (the case asyncio fixed in 3.11.x's semaphore).
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["ConnectionSlots"]


class ConnectionSlots:
    """At most ``size`` holders at once; the others wait their turn.

    ``if not slots.take_now(): await slots.take()``, then ``slots.give_back()``
    once, whatever happened (in a ``finally``).
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        return self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def take_now(self) -> bool:
        """Takes a slot if one is free. (None is while others wait: a slot given back
        goes to the first waiter, and only with none waiting back to the free ones.)"""
        if self._free > 0:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Takes a slot, waiting for one when none is free or others wait."""
        if self.take_now():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give_back()  # handed a slot as it was cancelled: the next one gets it
            elif waiter in self._waiters:  # (give_back drops a cancelled one it meets)
                self._waiters.remove(waiter)
            raise

    def give_back(self) -> None:
        """Returns a slot: to the first waiter still waiting, else to the free ones."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
