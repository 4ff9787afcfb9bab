"""Supervised background tasks: none may die without anyone noticing.

Every long-lived task of a part (the spool drainer's loop, a WebSocket stream)
is spawned here (the spool's writer is a thread: its death is reported through
``EventSpool(on_failure=...)``). When one ends while it should still run
(it returned, raised, or was cancelled by someone other than the supervisor), the
supervisor logs the cause (once per distinct cause, with the traceback), turns
the task's health name NOT_SERVING, and then, by policy:

- ``restart``: starts it again after the shared backoff (full jitter, reset after
  a healthy period); the part pushes SERVING again when it works;
- ``exit``: asks the process to exit non-zero (``on_fatal``), for tasks without
  which the adapter would only pretend to work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from adapter.resilience.backoff import Backoff

from .health import HealthBoard

__all__ = ["Supervisor", "TaskPolicy"]

logger = logging.getLogger(__name__)

TaskPolicy = Literal["restart", "exit"]


@dataclass(eq=False)
class _Supervised:
    name: str
    factory: Callable[[], Awaitable[None]]
    health: str | None
    policy: TaskPolicy
    backoff: Backoff
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    deaths: int = 0
    causes: set[str] = field(default_factory=set)


class Supervisor:
    """``spawn()`` long-lived tasks; ``stop()`` cancels them all (idempotent)."""

    def __init__(
        self,
        board: HealthBoard | None = None,
        *,
        on_fatal: Callable[[str, str], None] | None = None,
        policy: TaskPolicy = "restart",
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.board = board or HealthBoard()
        self._on_fatal = on_fatal
        self._policy = policy
        self._initial, self._max = backoff_initial, backoff_max
        self._entries: list[_Supervised] = []
        self._stopping = False

    def spawn(
        self,
        name: str,
        factory: Callable[[], Awaitable[None]],
        *,
        health: str | None = None,
        policy: TaskPolicy | None = None,
    ) -> asyncio.Task[None]:
        """Runs ``factory()`` as a supervised task; returns the task that keeps it
        running (cancelling that task from outside counts as a death)."""
        entry = _Supervised(name, factory, health, policy or self._policy, Backoff(self._initial, self._max))
        entry.task = asyncio.create_task(self._keep(entry), name=name)
        self._entries.append(entry)
        return entry.task

    def deaths(self, name: str) -> int:
        return sum(e.deaths for e in self._entries if e.name == name)

    async def _keep(self, entry: _Supervised) -> None:
        while True:
            error: BaseException | None = None
            try:
                await entry.factory()
                cause = "returned"
            except asyncio.CancelledError:
                if self._stopping or entry.stopping:
                    raise
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()  # killed from outside: a death like any other
                cause = "cancelled from outside"
            except Exception as exc:
                error, cause = exc, f"{type(exc).__name__}: {exc}"[:500]
            if self._stopping or entry.stopping:
                return
            entry.deaths += 1
            if cause not in entry.causes:  # once per distinct cause, with the traceback
                entry.causes.add(cause)
                logger.error("task %s died (%s)", entry.name, cause, exc_info=error)
            if entry.health is not None:
                self.board.set(entry.health, False, f"task {entry.name} died: {cause}")
            if entry.policy == "exit":
                if self._on_fatal is not None:
                    self._on_fatal(entry.name, cause)
                return
            delay = entry.backoff.next()
            logger.warning("restarting task %s in %.1fs", entry.name, delay)
            await asyncio.sleep(delay)

    async def cancel(self, task: asyncio.Task[None]) -> None:
        """Stops one supervised task on purpose (its part is stopping): not a death."""
        for entry in self._entries:
            if entry.task is task:
                entry.stopping = True
                self._entries.remove(entry)
                break
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def healthy(self, name: str) -> None:
        """A task's part says it works again: its backoff may reset later."""
        for entry in self._entries:
            if entry.name == name:
                entry.backoff.healthy()

    async def stop(self) -> None:
        self._stopping = True
        entries, self._entries = self._entries, []
        for entry in entries:
            if entry.task is not None:
                entry.task.cancel()
        for entry in entries:
            if entry.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(entry.task, return_exceptions=True)
