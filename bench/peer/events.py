"""The events rows of the peer bench: the adapter's path (spool + drainer into
Kafka) against a raw ``AIOKafkaProducer`` on the same broker, and the time from
receipt (a source handing a batch to the spool) to Kafka's acknowledgement at
half the path's measured maximum rate. Prints one JSON line.

    BENCH_KAFKA_PORT=19392 python -m bench.peer.events --seconds 5 --paced-seconds 20

The broker must be running (the peer bench starts it with ``scripts/kafka``).
Tracing is on as shipped (the SDK tracer provider ``python -m adapter`` installs,
without an exporter), so the Kafka send spans are paid for. (Records enter the
spool already encoded: the intake's receipt span per event is measured by
``bench/intake_tracing.py``.) The threads beside the loop run ``SCHED_BATCH`` as the
adapter's do (``helper_threads``); ``--helper-threads normal`` measures without. It runs
on the adapter's default loop, uvloop (``--event-loop asyncio`` for asyncio's); the raw
producer shares it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer

from adapter.events.delivery import SpoolDrainer
from adapter.events.kafka_sink import Delivered, DeliveryError, HandedOver, KafkaSink
from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool
from adapter.gc_tuning import tune_collector_for_serving
from adapter.helper_threads import HelperThreadPolicy
from bench import spool_throughput as st

# The drainer's linger (SpoolDrainer's default, events.kafka.linger_ms): the only batching delay.
LINGER_MS = 2
PER_CALL = 10  # records a source hands over at once (a WebSocket batch)

_A = TypeVar("_A")
_R = TypeVar("_R")


class AckTimes:
    """A sink in front of KafkaSink that notes when each record was acknowledged."""

    def __init__(self, inner: KafkaSink) -> None:
        self._inner = inner
        self.acked_at: dict[str, float] = {}

    async def hand_over(self, records: Sequence[OutboundRecord]) -> _Timed:
        return _Timed(self, records, await self._inner.hand_over(records))


class _Timed:
    def __init__(self, times: AckTimes, records: Sequence[OutboundRecord], inner: HandedOver) -> None:
        self._times, self._records, self._inner = times, records, inner
        self.complete = inner.complete

    async def outcomes(self) -> list[Delivered | DeliveryError]:
        outcomes = await self._inner.outcomes()
        now = time.perf_counter()
        for record, outcome in zip(self._records, outcomes, strict=True):
            if isinstance(outcome, Delivered):
                self._times.acked_at.setdefault(record.ce_id, now)
        return outcomes


async def pace(
    records: list[OutboundRecord],
    rate: float,
    seconds: float,
    take: Callable[[list[OutboundRecord], float], Awaitable[None]],
) -> None:
    """``st.SOURCES`` sources hand ``PER_CALL`` records at a time to ``take(chunk,
    received_at)``, ``rate`` records/s in total, for ``seconds``."""
    interval = st.SOURCES * PER_CALL / rate
    began = time.perf_counter()
    chunks = iter(range(0, len(records), PER_CALL))

    async def source(offset: float) -> None:
        due = began + offset
        while due < began + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            start = next(chunks, None)
            if start is None:
                return
            await take(records[start : start + PER_CALL], time.perf_counter())
            due += interval

    await asyncio.gather(*(source(i * interval / st.SOURCES) for i in range(st.SOURCES)))


async def paced(directory: Path, records: list[OutboundRecord], rate: float, seconds: float) -> list[float]:
    """Sources hand ``PER_CALL`` records at a time to the spool at ``rate`` records/s
    in total; returns receipt -> Kafka ack latencies (seconds) of every record."""
    received_at: dict[str, float] = {}
    await st.run_for_a_while(directory / "paced.db", records[0].topic)
    async with (
        EventSpool(directory / "paced.db", max_records=10**8, max_bytes=2**40) as spool,
        KafkaSink(st.BOOTSTRAP, client_id="bench-paced") as kafka,
    ):
        sink = AckTimes(kafka)
        async with SpoolDrainer(spool, sink, batch_size=500, linger=LINGER_MS / 1000):

            async def take(chunk: list[OutboundRecord], now: float) -> None:
                for r in chunk:
                    received_at[r.ce_id] = now
                await spool.append(chunk)

            began = time.perf_counter()
            await pace(records, rate, seconds, take)
            while True:  # a bench, not a test: a short poll until delivered is fine
                if not spool.depth or time.perf_counter() > began + 4 * seconds:
                    break
                await asyncio.sleep(0.005)
    return [sink.acked_at[k] - t for k, t in received_at.items() if k in sink.acked_at]


async def paced_raw(records: list[OutboundRecord], rate: float, seconds: float) -> list[float]:
    """The same sources, chunks and pace as ``paced``, straight into a raw
    ``AIOKafkaProducer`` (no spool, no drainer; the same 2 ms linger): what Kafka and
    this machine alone add between receipt and acknowledgement, the floor under the
    adapter's figure."""
    producer = AIOKafkaProducer(
        bootstrap_servers=st.BOOTSTRAP,
        client_id="bench-paced-raw",
        enable_idempotence=True,
        acks="all",
        linger_ms=LINGER_MS,
        max_batch_size=256 * 1024,
    )
    latencies: list[float] = []
    pending: set[asyncio.Future[object]] = set()

    async def take(chunk: list[OutboundRecord], now: float) -> None:
        for r in chunk:
            future = await producer.send(r.topic, value=r.value, key=r.key, headers=list(r.headers))
            future.add_done_callback(lambda _f, t=now: latencies.append(time.perf_counter() - t))
            pending.add(future)
            future.add_done_callback(pending.discard)

    await producer.start()
    try:
        await pace(records, rate, seconds, take)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return latencies


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def in_order(
    raw_first: bool, adapter: Callable[[], Awaitable[_A]], raw: Callable[[], Awaitable[_R]]
) -> tuple[_A, _R]:
    """Runs the adapter's step and the raw producer's, one after the other; returns (adapter, raw).

    Whichever runs second meets a broker that has just taken the first one's load (its log
    segments, page cache, JIT): `python -m bench.peer` alternates the order between runs so
    neither path is always the one favoured."""
    if raw_first:
        raw_result = await raw()
        return await adapter(), raw_result
    adapter_result = await adapter()
    return adapter_result, await raw()


async def main(
    seconds: float,
    count: int,
    paced_seconds: float,
    *,
    raw_first: bool = False,
    helper_threads: str = "batch",
) -> dict[str, Any]:
    # Rescanned often: a thread a run starts is found within its first moments.
    applying = None
    if helper_threads == "batch":
        applying = asyncio.create_task(HelperThreadPolicy(rescan_seconds=0.2).run())
    try:
        return await _measure(seconds, count, paced_seconds, raw_first)
    finally:
        if applying is not None:
            applying.cancel()


async def _measure(seconds: float, count: int, paced_seconds: float, raw_first: bool) -> dict[str, Any]:
    topic = f"bench-peer-{uuid.uuid4().hex[:8]}"
    records, raw_records = (st.make_records(topic, count) for _ in range(2))
    # As `python -m adapter` tunes its collector (its startup heap frozen): the bench's prebuilt
    # inputs (hundreds of thousands of records no adapter holds) would otherwise make every full
    # collection a 100-200 ms stall.
    tune_collector_for_serving()
    await st.topic_admin("create", topic)
    try:
        with tempfile.TemporaryDirectory(prefix="peer-events-") as tmp:
            adapter_path, raw = await in_order(
                raw_first,
                functools.partial(st.bench_end_to_end, Path(tmp), records, seconds),
                functools.partial(st.bench_raw_producer, raw_records, seconds),
            )
            adapter_rate = adapter_path.events / adapter_path.seconds
            del records, raw_records
            # The paced runs last ``paced_seconds`` (20 by default): in a 5 s run 1% of the
            # records is ~50 ms of traffic, so a single stall of the broker set the p99
            # (docs/benchmarks.md). Distinct records throughout: the spool drops repeated ids.
            half = adapter_rate / 2
            paced_count = int(half * paced_seconds) + 1_000
            paced_records, raw_paced_records = (st.make_records(topic, paced_count) for _ in range(2))
            tune_collector_for_serving()
            latencies, raw_latencies = await in_order(
                raw_first,
                functools.partial(paced, Path(tmp), paced_records, half, paced_seconds),
                functools.partial(paced_raw, raw_paced_records, half, paced_seconds),
            )
    finally:
        await st.topic_admin("delete", topic)
    return {
        "adapter_rate": adapter_rate,
        "raw_rate": raw.events / raw.seconds,
        "half_rate": adapter_rate / 2,
        "ack_p50_ms": quantile(latencies, 0.5) * 1000,
        "ack_p99_ms": quantile(latencies, 0.99) * 1000,
        "acked": len(latencies),
        "raw_ack_p50_ms": quantile(raw_latencies, 0.5) * 1000,
        "raw_ack_p99_ms": quantile(raw_latencies, 0.99) * 1000,
        "linger_ms": LINGER_MS,
        "order": "raw first" if raw_first else "adapter first",
    }


if __name__ == "__main__":
    from adapter.config.settings import TelemetrySettings
    from adapter.event_loop import run as run_event_loop
    from adapter.telemetry.tracing import build_tracer_provider

    build_tracer_provider(TelemetrySettings(otlp_enabled=False))  # global, as the adapter does
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0, help="each saturated run")
    parser.add_argument("--paced-seconds", type=float, default=20.0, help="each run at half the rate")
    parser.add_argument("--records", type=int, default=200_000, help="records built for a saturated run")
    parser.add_argument(
        "--raw-first", action="store_true", help="measure the raw producer before the adapter"
    )
    parser.add_argument("--helper-threads", choices=("batch", "normal"), default="batch")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    figures = run_event_loop(
        main(
            args.seconds, args.records, args.paced_seconds, raw_first=args.raw_first,
            helper_threads=args.helper_threads,
        ),
        args.event_loop,
    )  # fmt: skip
    print(json.dumps(figures), flush=True)
