"""The one thread that touches the spool's SQLite connection, and its group commit.

Every store operation runs on this thread, in the order the event loop asked for
it. The appends and acks waiting when the thread turns to its next job are taken
together into one transaction: the acks' removal first, then the appends (group
commit); any other call keeps its place after them. Each transaction's outcome
goes back to the loop as soon as it committed (``loop.call_soon_threadsafe``).

One transaction, not a removal and then a commit: an append that arrived while a
round ran waited for both, and each is several statements that give the GIL up and
must win it back from the busy loop (a removal took 2.4-3.2 ms of wall time for
0.3-0.8 ms of CPU, docs/benchmarks.md). Should that transaction fail, the acks and
the appends are run again apart, so one cannot fail the other.

Written by hand, not with a ``ThreadPoolExecutor`` and a committer task on the
loop: that pair formed each group on the loop and handed it over, so between two
commits the loop had to get round to the committer and the pool's thread had to
wake and take the GIL back. Under load (``bench.peer.events`` at half the maximum
rate) that wait was longer than the commit itself (docs/benchmarks.md). Here the
thread finds the next group itself, while it still holds the GIL.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .delivery_claims import DeliveryClaim
from .records import OutboundRecord
from .spool_store import AppendOutcome, SpoolSnapshot

__all__ = ["AppendGroup", "SpoolWriter"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(slots=True)
class _Append:
    records: list[OutboundRecord]
    claim: DeliveryClaim | None
    future: asyncio.Future[list[bool]]


@dataclass(slots=True)
class _Ack:
    seqs: list[int]
    future: asyncio.Future[SpoolSnapshot]


@dataclass(slots=True)
class _Call:
    fn: Callable[..., Any]
    args: tuple[object, ...]
    future: asyncio.Future[Any]


_STOP = object()

#: ``commit(groups, delivered)`` runs on the writer's thread: one transaction that removes
#: the ``delivered`` sequence numbers, then stores the appends given, an outcome per append
#: (:meth:`SpoolStore.append_groups`).
AppendGroup = list[tuple[list[OutboundRecord], DeliveryClaim | None]]


class SpoolWriter:
    """Runs store calls on one thread, in order; batches waiting appends into one commit.

    ``commit`` turns a group of appends, and the acks waiting beside them, into one
    transaction on the thread; ``remove(seqs)`` runs acks with no append beside them
    (merged: the drainer keeps several batches in flight, and each ack would be a
    transaction of its own);
    ``committed(outcome)`` hears each outcome on the loop, before the appends' callers do;
    ``died(why)`` hears, on the loop, that the thread ended for good (a bug), so health can say so.
    """

    def __init__(
        self,
        name: str,
        *,
        commit: Callable[[AppendGroup, list[int]], AppendOutcome],
        committed: Callable[[AppendOutcome], None],
        remove: Callable[[list[int]], SpoolSnapshot],
        died: Callable[[str], None] | None = None,
    ) -> None:
        self._name = name
        self._remove = remove
        self._on_death = died
        self._commit = commit
        self._committed = committed
        self._jobs: queue.SimpleQueue[_Append | _Ack | _Call | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._died: BaseException | None = None

    def start(self) -> None:
        """Starts the thread; its results come back to the running loop."""
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()

    @property
    def alive(self) -> bool:
        """Started, not stopped, and its thread has not died."""
        return self._thread is not None and self._died is None

    async def stop(self) -> None:
        """Runs the jobs already queued, then ends the thread. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(_STOP)
            await asyncio.to_thread(thread.join)

    def call(self, fn: Callable[..., _T], *args: object) -> asyncio.Future[_T]:
        """``fn(*args)`` on the thread, after every job queued before it."""
        future: asyncio.Future[_T] = self._new_future()
        self._jobs.put(_Call(fn, args, future))
        return future

    def append(
        self, records: list[OutboundRecord], claim: DeliveryClaim | None
    ) -> asyncio.Future[list[bool]]:
        """Queues an append; it commits with the appends waiting beside it."""
        future: asyncio.Future[list[bool]] = self._new_future()
        self._jobs.put(_Append(records, claim, future))
        return future

    def ack(self, seqs: list[int]) -> asyncio.Future[SpoolSnapshot]:
        """Queues the removal of delivered records; it runs with the acks waiting beside it."""
        future: asyncio.Future[SpoolSnapshot] = self._new_future()
        self._jobs.put(_Ack(seqs, future))
        return future

    def _new_future(self) -> asyncio.Future[Any]:
        if self._thread is None or self._loop is None:
            raise RuntimeError("the spool writer is not running")
        if self._died is not None:  # nothing would ever answer: say so instead of hanging
            raise RuntimeError(f"the spool writer thread died: {self._died!r}") from self._died
        return self._loop.create_future()

    # -- the thread ------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self._take_jobs()
        except BaseException as exc:  # each job's errors are its caller's; this is a bug
            self._died = exc
            logger.critical("spool writer %s died; appends now fail", self._name, exc_info=True)
            if self._on_death is not None:
                self._post(self._on_death, f"spool writer {self._name} died: {exc!r}")

    def _take_jobs(self) -> None:
        carried: object | None = None  # a job taken while gathering, run next
        while True:
            job = carried if carried is not None else self._jobs.get()
            carried = None
            if job is _STOP:
                return
            if isinstance(job, _Call):
                self._run_call(job)
                continue
            if not isinstance(job, _Append | _Ack):
                raise TypeError(f"not a spool job: {job!r}")
            appends: list[_Append] = []
            acks: list[_Ack] = []
            while True:  # every append and ack already waiting joins this round
                if isinstance(job, _Append):
                    appends.append(job)
                elif isinstance(job, _Ack):
                    acks.append(job)
                else:  # a call (or the stop) keeps its place after this round
                    carried = job
                    break
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
            if appends and acks and self._run_together(appends, acks):
                continue
            if acks:  # first: they make room the appends may need
                self._run_acks(acks)
            if appends:
                self._run_commit(appends)

    def _run_call(self, job: _Call) -> None:
        try:
            result = job.fn(*job.args)
        except BaseException as exc:  # handed to the caller, as an executor would
            self._post(_fail, [job.future], exc)
        else:
            self._post(_succeed, job.future, result)

    def _run_acks(self, acks: list[_Ack]) -> None:
        futures = [job.future for job in acks]
        try:
            snapshot = self._remove([seq for job in acks for seq in job.seqs])
        except BaseException as exc:  # an I/O error: the records stay, to be delivered again
            self._post(_fail, futures, exc)
            return
        self._post(_succeed_all, futures, snapshot)

    def _run_together(self, group: list[_Append], acks: list[_Ack]) -> bool:
        """Acks and appends in one transaction; False (nothing done) if it failed."""
        try:
            outcome = self._commit(
                [(job.records, job.claim) for job in group], [seq for job in acks for seq in job.seqs]
            )
        except Exception as exc:  # rolled back: the caller runs them apart, each with its own outcome
            logger.debug("spool writer %s: acks with appends failed (%r); apart", self._name, exc)
            return False
        self._post(self._deliver, [job.future for job in group], outcome)
        self._post(_succeed_all, [job.future for job in acks], outcome.snapshot)
        return True

    def _run_commit(self, group: list[_Append]) -> None:
        futures = [job.future for job in group]
        try:
            outcome = self._commit([(job.records, job.claim) for job in group], [])
        except BaseException as exc:  # disk full, I/O error: every append of this group failed
            logger.error("spool writer %s: commit of %d appends failed: %r", self._name, len(group), exc)
            self._post(_fail, futures, exc)
            return
        self._post(self._deliver, futures, outcome)

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed under us: nobody is waiting any more
            logger.debug("spool writer %s: loop closed, result dropped", self._name)

    # -- back on the loop ------------------------------------------------------------------

    def _deliver(self, futures: list[asyncio.Future[list[bool]]], outcome: AppendOutcome) -> None:
        self._committed(outcome)
        for future, result in zip(futures, outcome.results, strict=True):
            if future.done():  # the caller was cancelled; what committed stays committed
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


def _succeed(future: asyncio.Future[Any], result: object) -> None:
    if not future.done():
        future.set_result(result)


def _succeed_all(futures: list[asyncio.Future[Any]], result: object) -> None:
    for future in futures:
        _succeed(future, result)


def _fail(futures: list[asyncio.Future[Any]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
