"""Helper threads yield the core to the event loop (``SCHED_BATCH``).

A call's work runs on one thread, the event loop's, yet each call also wakes other
threads of the process: grpc.aio's completion-queue poller (about eight times a
call), behind the Envoy front Envoy's worker and pyvoy's bridge, the span exporter,
the spool writer. Linux lets a thread that wakes up preempt the one running on its
core, so on a busy core each of those wake-ups cost two context switches and the
loop's caches: 7.7 involuntary switches of the loop thread a call on grpc.aio,
measured with the peer bench (docs/benchmarks.md, "Twenty-ninth stop"). A
``SCHED_BATCH`` thread never preempts on waking (sched(7)); it runs when the loop
waits for I/O or at the scheduler's tick, and then finds several events to handle
at once. Its share of the CPU is unchanged (same nice value, no privilege needed:
sched_setscheduler(2)).

Written by hand: no library sets a policy on the threads a process did not create
itself (grpc core's, Envoy's). Threads are found in ``/proc/self/task``, again every
``rescan_seconds``, since some start later (thread pools start theirs on first use).
Only threads still on ``SCHED_OTHER`` are changed: a policy someone chose stays.

Spared: the event spool's threads (``spool-*``), so the events path runs as it was
measured before. Its pipeline waits on the writer's commits; the events bench
(``bench.peer.events``) showed no difference either way within its spread between
runs (the adapter's rate 0.83-1.08x the raw producer's with the writer batch,
spared, or every thread normal), so the path keeps the measured behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

__all__ = ["HelperThreadPolicy"]

logger = logging.getLogger(__name__)

_TASKS = Path("/proc/self/task")
#: Python threads (by name) the loop waits on: they keep SCHED_OTHER.
_SPARED = ("spool-",)


class HelperThreadPolicy:
    """``await run()`` on the event loop: every other thread of the process becomes
    ``SCHED_BATCH``, now and as new ones appear.

    >>> asyncio.create_task(HelperThreadPolicy(rescan_seconds=5).run())  # doctest: +SKIP
    """

    def __init__(
        self, *, rescan_seconds: float = 5.0, tasks: Path = _TASKS, spared: tuple[str, ...] = _SPARED
    ) -> None:
        self._rescan = rescan_seconds
        self._tasks = tasks
        self._spared = spared
        self._refused = False

    async def run(self) -> None:
        """Never returns (cancel it); a thread the kernel refuses is logged once."""
        loop_thread = threading.get_native_id()  # the caller's: run() runs on the loop
        first = True
        while True:
            marked = self.apply(keep=loop_thread)
            if first or marked:
                logger.log(
                    logging.INFO if first else logging.DEBUG,
                    "%d helper threads set to SCHED_BATCH (the event loop's thread %d keeps its core)",
                    marked,
                    loop_thread,
                )
                first = False
            await asyncio.sleep(self._rescan)

    def apply(self, *, keep: int) -> int:
        """Sets ``SCHED_BATCH`` on every ``SCHED_OTHER`` thread but ``keep`` and the
        spared ones; returns how many were set."""
        if not hasattr(os, "sched_setscheduler"):  # not Linux: nothing to do
            return 0
        marked = 0
        try:
            threads = [int(entry.name) for entry in self._tasks.iterdir()]
        except OSError as exc:
            self._refuse(f"cannot list the process's threads in {self._tasks}: {exc}")
            return 0
        spared = {keep} | {
            t.native_id
            for t in threading.enumerate()
            if t.native_id is not None and t.name.startswith(self._spared)
        }
        for tid in threads:
            if tid in spared:
                continue
            try:
                if os.sched_getscheduler(tid) != os.SCHED_OTHER:
                    continue
                os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
            except ProcessLookupError:
                continue  # the thread ended meanwhile
            except OSError as exc:  # e.g. a seccomp profile that forbids it
                self._refuse(f"the kernel refused SCHED_BATCH for thread {tid}: {exc}")
                continue
            marked += 1
        return marked

    def _refuse(self, why: str) -> None:
        if not self._refused:
            self._refused = True
            logger.warning("%s; those threads keep their policy (helper_threads = 'normal': no tries)", why)
