"""Parts started in order, unwound when a later one fails, stopped in reverse.

Every long-lived part of the adapter (spool, Kafka sink, drainer, webhook
receiver, WebSocket streams, gRPC server, operator port) is a :class:`Part`:
``start()`` then ``stop()``. :meth:`LifecycleGroup.start` starts them in the
order given; if one fails, the parts already started are stopped in reverse order
before the error is raised, so nothing leaks (tasks, sockets, files).
:meth:`LifecycleGroup.stop` stops every started part in reverse order, each
within its bound, logging and never raising a part's failure, so one broken part
cannot keep the others from closing cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LifecycleGroup", "Part", "PartFailedToStart", "part"]

logger = logging.getLogger(__name__)


class Part(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class _FunctionPart:
    name: str
    on_start: Callable[[], Awaitable[object]]
    on_stop: Callable[[], Awaitable[object]]

    async def start(self) -> None:
        await self.on_start()

    async def stop(self) -> None:
        await self.on_stop()


def part(name: str, start: Callable[[], Awaitable[object]], stop: Callable[[], Awaitable[object]]) -> Part:
    """A part from two coroutines (for components whose methods are named otherwise)."""
    return _FunctionPart(name, start, stop)


class PartFailedToStart(RuntimeError):
    """A part could not start; the parts started before it were stopped again."""

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(f"{name} failed to start: {type(cause).__name__}: {cause}")
        self.part = name


class LifecycleGroup:
    """``start()`` / ``stop()`` over parts; ``stop()`` is idempotent."""

    def __init__(self, parts: list[Part], *, stop_timeout: float = 30.0) -> None:
        self._parts = list(parts)
        self._started: list[Part] = []
        self._stop_timeout = stop_timeout

    @property
    def started(self) -> list[str]:
        return [p.name for p in self._started]

    async def start(self) -> None:
        for each in self._parts:
            try:
                await each.start()
            except BaseException as exc:
                logger.error(
                    "%s failed to start (%s: %s); stopping what started", each.name, type(exc).__name__, exc
                )
                await self.stop()
                if isinstance(exc, Exception):
                    raise PartFailedToStart(each.name, exc) from exc
                raise
            self._started.append(each)

    async def stop(self) -> None:
        started, self._started = self._started, []
        for each in reversed(started):
            try:
                async with asyncio.timeout(self._stop_timeout):
                    await each.stop()
            except TimeoutError:
                logger.error("%s did not stop within %.0fs; moving on", each.name, self._stop_timeout)
            except Exception:
                logger.exception("%s failed to stop cleanly; moving on", each.name)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # the stop itself was cancelled
                # A library's own cancellation leaking out of a part's stop: not a reason
                # to leave the parts after it (the spool among them) unclosed.
                logger.error("%s failed to stop cleanly (a stray CancelledError); moving on", each.name)
