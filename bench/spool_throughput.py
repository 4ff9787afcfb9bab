"""What the durable spool costs, side by side with sending straight to Kafka.

    python -m bench.spool_throughput [--records N] [--seconds S]

Rows (same records: ~300-byte JSON value, 5 headers, 50 keys, 3 partitions):

- spool append, ``synchronous=normal`` / ``full``: 16 concurrent sources appending
  1 record per call (webhook-like) and 100 per call (WebSocket burst). Latency is
  the time until the append is durable, i.e. until a source may acknowledge.
- spool + drainer -> Kafka: the adapter's path end to end. events/s counts until
  Kafka acknowledged the last record; latency is the append latency the sources saw.
- KafkaSink.send_batch and a raw ``AIOKafkaProducer`` (same safety settings, no
  spool): latency is until Kafka acknowledged, which is what a source producing
  directly would wait before acknowledging.

Needs the test broker on 127.0.0.1:19092 (or ``BENCH_KAFKA_PORT``, else
``KAFKA_TEST_PORT``), started with ``scripts/kafka`` when it is not running, and
stopped again afterwards. Every scenario is capped at
``--seconds`` (default 6), so a run stays under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry.trace import SpanContext, TraceFlags

from adapter.config.events import SpoolSettings
from adapter.events.delivery import SpoolDrainer
from adapter.events.kafka_sink import Delivered, KafkaSink
from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool

ROOT = Path(__file__).resolve().parents[1]
PORT = int(os.environ.get("BENCH_KAFKA_PORT") or os.environ.get("KAFKA_TEST_PORT") or 19092)
BOOTSTRAP = f"127.0.0.1:{PORT}"
SOURCES = 16
DEDUPE_WINDOW: int = SpoolSettings.model_fields["dedupe_window"].default  # as shipped


@dataclass
class Result:
    name: str
    events: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per call (or record)
    note: str = ""

    def row(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        q = statistics.quantiles(self.latencies, n=100) if len(self.latencies) >= 2 else [0.0] * 99
        return (
            f"{self.name:<48} {self.events:>8} {rate:>10,.0f} {q[49] * 1000:>9.2f} {q[98] * 1000:>9.2f}  "
            f"{self.note}"
        )


def make_records(topic: str, count: int) -> list[OutboundRecord]:
    """Records as the intake builds them: CloudEvents headers, a ``traceparent`` and,
    as in memory after receipt, the span context it names (``OutboundRecord.creation``).
    Their ids are unrelated to each other (uuid4s), as vendors' are: numbered ids would
    sort together, which flatters any index on them."""
    receipt = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(1))
    records = []
    for n in range(count):
        ce_id = str(uuid.uuid4())
        value = (
            b'{"id":"alr_%08d","severity":"high","device_id":"dev_%03d","status":"open",'
            b'"title":"Disk usage above threshold on the primary volume","detected_at":'
            b'"2026-11-25T12:00:00.000Z","details":{"volume":"/","used_pct":97.5,"threshold":90}'
            b',"pad":"' % (n, n % 50) + b"x" * 60 + b'"}'
        )
        headers = (
            ("ce_specversion", b"1.0"),
            ("ce_id", ce_id.encode()),
            ("ce_type", b"com.openframe.alert.created"),
            ("content-type", b"application/json"),
            ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        )
        records.append(OutboundRecord(topic, b"dev_%03d" % (n % 50), value, headers, ce_id, receipt))
    return records


async def run_sources(
    records: list[OutboundRecord],
    per_call: int,
    append: Callable[[list[OutboundRecord]], Awaitable[Any]],
    deadline: float,
    latencies: list[float],
) -> int:
    """SOURCES concurrent callers share ``records`` in chunks of ``per_call``; returns records sent."""
    chunks = itertools.count()
    sent = 0

    async def source() -> None:
        nonlocal sent
        while time.perf_counter() < deadline:
            start = next(chunks) * per_call
            if start >= len(records):
                return
            chunk = records[start : start + per_call]
            began = time.perf_counter()
            await append(chunk)
            latencies.append(time.perf_counter() - began)
            sent += len(chunk)

    await asyncio.gather(*(source() for _ in range(SOURCES)))
    return sent


async def bench_spool(
    directory: Path,
    records: list[OutboundRecord],
    synchronous: Literal["normal", "full"],
    per_call: int,
    seconds: float,
) -> Result:
    result = Result(f"spool append, {synchronous}, {per_call}/call x{SOURCES}", note="until durable")
    path = directory / f"append-{synchronous}-{per_call}.db"
    async with EventSpool(path, synchronous=synchronous, max_records=10**8, max_bytes=2**40) as spool:
        began = time.perf_counter()
        result.events = await run_sources(records, per_call, spool.append, began + seconds, result.latencies)
        result.seconds = time.perf_counter() - began
    return result


async def run_for_a_while(path: Path, topic: str) -> None:
    """Makes the spool at ``path`` one that has taken ``DEDUPE_WINDOW`` events and was
    restarted: its dedupe memory full, of unrelated ids (what a record costs the spool
    depends on it, ``bench.spool_store_cost``), its write-ahead log checkpointed."""
    async with EventSpool(path) as spool:
        await spool.remember([f"{topic}\x00{uuid.uuid4()}" for _ in range(DEDUPE_WINDOW)])


async def bench_end_to_end(directory: Path, records: list[OutboundRecord], seconds: float) -> Result:
    result = Result("spool(normal) + drainer -> Kafka, 10/call", note="append latency; rate until acked")
    await run_for_a_while(directory / "e2e.db", records[0].topic)
    async with (
        EventSpool(directory / "e2e.db", max_records=10**8, max_bytes=2**40) as spool,
        KafkaSink(BOOTSTRAP, client_id="bench-e2e") as sink,
        SpoolDrainer(spool, sink, batch_size=500),
    ):
        began = time.perf_counter()
        result.events = await run_sources(records, 10, spool.append, began + seconds, result.latencies)
        while spool.depth:  # a bench, not a test: a short poll is fine here
            if time.perf_counter() > began + 4 * seconds:
                result.note += f" (gave up with {spool.depth} spooled)"
                break
            await asyncio.sleep(0.005)
        result.seconds = time.perf_counter() - began
    return result


async def bench_sink(records: list[OutboundRecord], seconds: float) -> Result:
    result = Result("KafkaSink.send_batch, 500/batch (no spool)", note="until acked (per batch)")
    async with KafkaSink(BOOTSTRAP, client_id="bench-sink") as sink:
        began = time.perf_counter()
        for start in range(0, len(records), 500):
            if time.perf_counter() > began + seconds:
                break
            t = time.perf_counter()
            outcomes = await sink.send_batch(records[start : start + 500])
            result.latencies.append(time.perf_counter() - t)
            result.events += sum(isinstance(o, Delivered) for o in outcomes)
        result.seconds = time.perf_counter() - began
    return result


async def bench_raw_producer(records: list[OutboundRecord], seconds: float) -> Result:
    result = Result("raw AIOKafkaProducer, 500 in flight (no spool)", note="until acked (per record)")
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        client_id="bench-raw",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        began = time.perf_counter()
        for start in range(0, len(records), 500):
            if time.perf_counter() > began + seconds:
                break
            futures = []
            for r in records[start : start + 500]:
                sent_at = time.perf_counter()
                future = await producer.send(r.topic, value=r.value, key=r.key, headers=list(r.headers))
                future.add_done_callback(
                    lambda _f, t=sent_at: result.latencies.append(time.perf_counter() - t)
                )
                futures.append(future)
            await asyncio.gather(*futures)
            result.events += len(futures)
        result.seconds = time.perf_counter() - began
    finally:
        await producer.stop()
    return result


def broker(command: str) -> int:
    env = {**os.environ, "KAFKA_PORT": str(PORT)}
    done = subprocess.run(
        [str(ROOT / "scripts" / "kafka"), command], env=env, capture_output=True, check=False
    )
    return done.returncode


async def topic_admin(action: Literal["create", "delete"], topic: str) -> None:
    from aiokafka.admin import NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        if action == "create":
            await admin.create_topics([NewTopic(topic, 3, 1)])
        else:
            await admin.delete_topics([topic])
    finally:
        await admin.close()


async def main(count: int, seconds: float) -> None:
    topic = f"bench-spool-{uuid.uuid4().hex[:8]}"
    records = make_records(topic, count)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="spool-bench-") as tmp:
        directory = Path(tmp)
        for synchronous in ("normal", "full"):
            for per_call in (1, 100):
                results.append(await bench_spool(directory, records, synchronous, per_call, seconds))
        await topic_admin("create", topic)
        try:
            results.append(await bench_end_to_end(directory, records, seconds))
            results.append(await bench_sink(records, seconds))
            results.append(await bench_raw_producer(records, seconds))
        finally:
            await topic_admin("delete", topic)
    print(f"{'scenario':<48} {'events':>8} {'events/s':>10} {'p50 ms':>9} {'p99 ms':>9}  latency is")
    for result in results:
        print(result.row())


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60_000, help="records per scenario (default 60000)")
    parser.add_argument("--seconds", type=float, default=6.0, help="cap per scenario (default 6)")
    args = parser.parse_args()
    if os.environ.get("BENCH_SMOKE") == "1":
        args.records, args.seconds = 2_000, 0.3
    started_broker = broker("status") != 0
    if started_broker and broker("start") != 0:
        raise SystemExit(f"could not start the Kafka broker on {BOOTSTRAP} (scripts/kafka start)")
    try:
        print(f"mesh-adapter spool bench: {os.cpu_count()} CPUs, broker {BOOTSTRAP}, {SOURCES} sources\n")
        asyncio.run(main(args.records, args.seconds))
    finally:
        if started_broker:
            broker("stop")


if __name__ == "__main__":
    cli()
