"""The drainer: moves spooled records to Kafka, oldest first, and acks what Kafka took.

One task loops: read up to ``batch_size`` pending records (spool order), hand them
to the sink's producer, and read the next batch while Kafka acknowledges the
earlier ones, up to ``max_in_flight`` batches at once (the hand-overs stay in
spool order: one task does them, one after the other). As each batch settles,
oldest first, ack in the spool exactly the records Kafka acknowledged. When any
record failed, hand over nothing more, let the batches in flight settle, wait a
jittered exponential backoff and start again from the oldest record still
pending. So a failed record is re-sent before anything that came after it, and a
consumer that drops repeated ``ce_id`` values sees each key's events in the order
the sources accepted them (see ``docs/delivery.md`` for why neither the retry nor
the batches in flight can reorder them).

Records Kafka can never take (:class:`~adapter.events.kafka_sink.RecordRejected`)
are moved to the spool's dead-letter table instead of blocking everything behind them.

What operators hear (state, health, outage and progress lines) is
:mod:`adapter.events.delivery_report`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Protocol

from adapter.lifecycle.supervisor import Supervisor
from adapter.resilience.backoff import Backoff

from .delivery_report import DeliveryReport, State
from .kafka_outcomes import Delivered, DeliveryError
from .records import OutboundRecord
from .spool import EventSpool, SpoolClosed

__all__ = ["DrainerMetrics", "RecordSink", "SpoolDrainer"]

logger = logging.getLogger(__name__)


class HandedOverBatch(Protocol):
    """Records a sink took, in order (:class:`~adapter.events.kafka_sink.HandedOver`)."""

    @property
    def complete(self) -> bool: ...

    async def outcomes(self) -> list[Delivered | DeliveryError]: ...


class RecordSink(Protocol):
    """What the drainer needs from a sink (:class:`~adapter.events.kafka_sink.KafkaSink`)."""

    async def hand_over(self, records: Sequence[OutboundRecord]) -> HandedOverBatch: ...


@dataclass(slots=True)
class _InFlight:
    entries: list[tuple[int, OutboundRecord]]
    outcomes: asyncio.Future[list[Delivered | DeliveryError]]


@dataclass(frozen=True, slots=True)
class DrainerMetrics:
    """Counters since start, and gauges read now; names fit a metrics exporter as they are."""

    delivered: int
    retried: int  # record sends that failed and will be (or were) sent again
    dead_lettered: int
    failed_rounds: int
    spool_depth: int
    oldest_pending_age: float  # seconds
    state: State
    failing_for: float  # seconds since the first failure of the current outage, 0.0 when healthy


class SpoolDrainer:
    """Delivers what the spool holds, for as long as it runs.

    Example::

        async with EventSpool(path) as spool, KafkaSink(servers) as sink, SpoolDrainer(spool, sink):
            ...  # sources append; the drainer delivers

    Start it after the spool and the sink, stop it before them.
    """

    def __init__(
        self,
        spool: EventSpool,
        sink: RecordSink,
        *,
        batch_size: int = 500,
        max_in_flight: int = 4,
        linger: float = 0.002,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        stop_grace: float = 5.0,
        progress_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        supervisor: Supervisor | None = None,
        on_health: Callable[[bool, str], None] | None = None,
        health_name: str | None = None,
    ) -> None:
        """``on_health(serving, why)`` hears when Kafka starts failing and recovers;
        ``linger``: how long records wait, from the last hand-over, behind a batch in
        flight for a full batch before they go out as a partial one (behind two or more
        unsettled batches, they wait for the oldest to settle). ``supervisor`` keeps the delivery loop
        running (a private one by default) and turns ``health_name`` NOT_SERVING while the loop is dead."""
        if batch_size < 1 or max_in_flight < 1:
            raise ValueError("batch_size and max_in_flight must be at least 1")
        self._spool = spool
        self._sink = sink
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.linger = linger
        self._backoff = Backoff(backoff_initial, backoff_max, rng=rng)
        self._supervisor = supervisor or Supervisor()
        self._health_name = health_name
        self.stop_grace = stop_grace
        self.progress_interval = progress_interval
        self._clock = clock
        self._report = DeliveryReport(
            spool, progress_interval=progress_interval, clock=clock, on_health=on_health
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._drained = asyncio.Event()
        self._delivered = self._retried = self._dead_lettered = self._failed_rounds = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the delivery task (idempotent)."""
        if self._task is None:
            self._stopping.clear()
            self._drained.clear()
            self._report.started()
            self._task = self._supervisor.spawn(
                "spool-drainer", self._run_until_stopped, health=self._health_name
            )

    async def stop(self, grace: float | None = None) -> None:
        """Keeps delivering for up to ``grace`` seconds (default ``stop_grace``) while
        Kafka takes records, then stops; what is left stays spooled for the next start.
        Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        grace = self.stop_grace if grace is None else grace
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), grace)
        await self._supervisor.cancel(task)
        self._report.stopped()
        logger.info(
            "spool drainer stopped: %d delivered, %d still spooled (delivered on next start)",
            self._delivered,
            self._spool.depth,
        )

    async def __aenter__(self) -> SpoolDrainer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._report.state

    def metrics(self) -> DrainerMetrics:
        """Counters and gauges, for an exporter or a health check."""
        return DrainerMetrics(
            delivered=self._delivered,
            retried=self._retried,
            dead_lettered=self._dead_lettered,
            failed_rounds=self._failed_rounds,
            spool_depth=self._spool.depth,
            oldest_pending_age=self._spool.oldest_pending_age,
            state=self._report.state,
            failing_for=self._report.failing_for(),
        )

    # -- the loop ----------------------------------------------------------------------------

    async def _run_until_stopped(self) -> None:
        self._report.serving()
        await self._run()
        if not self._stopping.is_set():  # the loop only returns when asked to stop
            raise RuntimeError("the delivery loop ended while the drainer runs")
        self._drained.set()
        await asyncio.Event().wait()  # stopping: wait to be cancelled, not restarted

    async def _run(self) -> None:
        while True:
            if self._stopping.is_set() and (self._report.state == "failing" or self._spool.depth == 0):
                return  # stopping: leave once empty, or at once while Kafka is failing
            if not await self._wait_for_records():
                continue
            failed: list[DeliveryError] | None  # None: the round broke, not Kafka
            round_started = self._clock()
            try:
                failed = await self._deliver_once()
            except SpoolClosed:
                logger.error("spool closed under the drainer; stop the drainer before the spool")
                return
            except Exception:
                logger.exception("spool drainer round failed unexpectedly; retrying")
                failed = None
            if failed == []:
                self._backoff.reset()
                self._report.recovered(self._delivered)
                self._report.progress(self._delivered)
                continue
            delay = self._backoff.next()
            self._failed_rounds += 1
            if failed:
                self._report.failing(failed[0], delay, round_started)
            if await _wait(self._stopping, delay):
                return  # stop requested while Kafka is failing: nothing more to drain now

    async def _wait_for_records(self) -> bool:
        if self._spool.depth > 0:
            return True
        self._report.idle()
        self._report.progress(self._delivered)
        records = asyncio.create_task(self._spool.wait_for_records(self.progress_interval))
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait([records, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            records.cancel()
            stopping.cancel()
        return self._spool.depth > 0

    async def _deliver_once(self) -> list[DeliveryError]:
        """One round: hands over batch after batch, up to ``max_in_flight`` unsettled,
        until nothing new is pending and every batch settled, or until a record failed
        (then the batches in flight settle first). Returns the retriable failures
        (empty: all delivered or dead-lettered)."""
        window: deque[_InFlight] = deque()
        # The spool writes of settled batches (acks, dead letters) run beside the feeding:
        # awaited inline, each one held the next hand-over behind the spool's queued commits.
        writes: set[asyncio.Future[None]] = set()
        after = 0  # the last sequence number handed over in this round
        feeding = True  # False once a record failed: nothing more is handed over
        failed: list[DeliveryError] = []
        loop = asyncio.get_running_loop()
        handed_at = loop.time()  # when the last batch was handed over: records linger from then
        try:
            while True:
                # An empty window takes whatever is pending (latency). With batches in flight, a
                # partial batch goes out only after ``linger``, and only behind a single batch in
                # flight (small batches cost more per record): as in Kafka's own producer, records
                # that lingered keep gathering while the batch ahead of them is still unsent.
                may_linger = len(window) <= _PARTIAL_BEHIND
                take_partial = not window or (may_linger and loop.time() >= handed_at + self.linger)
                enough = 1 if take_partial else self.batch_size
                if feeding and len(window) < self.max_in_flight and self._spool.last_seq - after >= enough:
                    entries = await self._spool.pending(self.batch_size, after=after)
                    if entries:
                        after = entries[-1][0]
                        self._report.delivering()
                        batch = await self._sink.hand_over([record for _, record in entries])
                        window.append(_InFlight(entries, asyncio.ensure_future(batch.outcomes())))
                        feeding = batch.complete
                        handed_at = loop.time()
                        continue
                    feeding = False  # (cannot happen: only this loop removes records)
                _raise_failed_write(writes)
                if not window:
                    if not writes:
                        return failed
                    # Nothing in flight: the round ends once the spool wrote what settled,
                    # unless new records come first.
                    waits: list[asyncio.Future[Any]] = list(writes)
                    if feeding:
                        waits.append(asyncio.ensure_future(self._spool.wait_for_records_after(after)))
                    try:
                        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        if feeding:
                            waits[-1].cancel()
                    continue
                oldest = window[0]
                if feeding and len(window) < self.max_in_flight:
                    # Room for another batch: wake for a full batch too, not only the oldest batch,
                    # and, where a partial batch may follow its linger, for the first record of it.
                    waiting = self._spool.last_seq > after
                    wake_at = after + self.batch_size - 1 if waiting or not may_linger else after
                    more = asyncio.ensure_future(self._spool.wait_for_records_after(wake_at))
                    either: list[asyncio.Future[Any]] = [oldest.outcomes, more]
                    linger: float | None = None  # no partial batch due: wait for one of ``either``
                    if may_linger and waiting:
                        linger = max(0.0, handed_at + self.linger - loop.time())
                    try:
                        await asyncio.wait(either, timeout=linger, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        more.cancel()
                    if not oldest.outcomes.done():
                        continue
                window.popleft()
                settled, failures = self._sort(oldest.entries, await oldest.outcomes)
                write = asyncio.ensure_future(settled)
                writes.add(write)
                write.add_done_callback(partial(_forget_if_written, writes))
                failed += failures
                if failed:
                    feeding = False
                self._report.progress(self._delivered)
        finally:
            for item in window:  # only when the round broke: their records stay spooled
                item.outcomes.cancel()
            if writes:  # let the spool writes finish; an error of theirs is already being raised
                await asyncio.gather(*writes, return_exceptions=True)

    def _sort(
        self, entries: list[tuple[int, OutboundRecord]], outcomes: list[Delivered | DeliveryError]
    ) -> tuple[Coroutine[Any, Any, None], list[DeliveryError]]:
        """The spool writes for what Kafka took (acks) and what it never will (dead
        letters), not started; and the retriable failures."""
        delivered: list[int] = []
        rejected: list[tuple[int, OutboundRecord, DeliveryError]] = []
        failed: list[DeliveryError] = []
        for (seq, record), outcome in zip(entries, outcomes, strict=True):
            if isinstance(outcome, Delivered):
                delivered.append(seq)
            elif outcome.retriable:
                failed.append(outcome)
            else:
                rejected.append((seq, record, outcome))
        self._retried += len(failed)
        return self._settle(delivered, rejected), failed

    async def _settle(
        self, delivered: list[int], rejected: list[tuple[int, OutboundRecord, DeliveryError]]
    ) -> None:
        if delivered:
            await self._spool.ack(delivered)
            self._delivered += len(delivered)
        for seq, record, error in rejected:
            logger.error(
                "Kafka rejected event %s for %s for good (%s); kept in the spool's dead_letters table",
                record.ce_id,
                record.topic,
                error,
            )
            await self._spool.dead_letter([seq], str(error))
            self._dead_lettered += 1


#: Unsettled batches a lingered partial batch may go out behind. The sink's producer has
#: one request in flight per broker, one record batch per partition each: a second partial
#: batch behind the first would wait unsent anyway, and fill less than if it waited here.
_PARTIAL_BEHIND = 1


def _forget_if_written(writes: set[asyncio.Future[None]], write: asyncio.Future[None]) -> None:
    """Drops a spool write that succeeded; one that failed stays for :func:`_raise_failed_write`."""
    if write.cancelled() or write.exception() is None:
        writes.discard(write)


def _raise_failed_write(writes: set[asyncio.Future[None]]) -> None:
    """Raises the error of a spool write that failed (the round then breaks, as an
    inline write's error would have broken it)."""
    for write in writes:
        if write.done() and not write.cancelled() and write.exception() is not None:
            write.result()


async def _wait(event: asyncio.Event, delay: float) -> bool:
    """Sleeps ``delay`` seconds unless ``event`` is set first; True when it was."""
    try:
        async with asyncio.timeout(delay):
            await event.wait()
    except TimeoutError:
        return False
    return True
