"""SpoolDrainer: retry order, dead letters, stop semantics (with a scripted sink), then the
real thing: delivery in order per key, and a broker outage that loses nothing."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from adapter.events.delivery import SpoolDrainer
from adapter.events.kafka_sink import (
    Delivered,
    DeliveryError,
    DeliveryFailed,
    DeliveryTimeout,
    KafkaSink,
    KafkaUnavailable,
    RecordRejected,
)
from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool
from tests.events.kafka_fixtures import TopicFactory, consume_all, start_broker, stop_broker, wait_until

pytest_plugins = ["tests.events.kafka_fixtures"]

Outcome = Delivered | DeliveryError


def record(n: int, *, topic: str = "t", keys: int = 10) -> OutboundRecord:
    key = b"device-%d" % (n % keys)
    return OutboundRecord(
        topic=topic, key=key, value=b"%d" % n, headers=(("ce_id", b"e-%d" % n),), ce_id=f"e-{n}"
    )


def number(r: OutboundRecord) -> int:
    return int(r.ce_id.removeprefix("e-"))


class ScriptedSink:
    """A sink whose outcome per record comes from ``script(batch, record)``, ``batch``
    counting the hand-overs (``rounds`` lists each hand-over's records)."""

    def __init__(self, script: Callable[[int, OutboundRecord], Outcome | None] | None = None) -> None:
        self.script = script or (lambda _round, _record: None)
        self.rounds: list[list[int]] = []
        self.release = asyncio.Event()
        self.block = False
        self.unsettled = 0
        self.most_unsettled = 0
        self.hold = False  # batches stay unacknowledged until the test sets their ``settle``
        self.batches: list[ScriptedBatch] = []

    async def hand_over(self, records: Sequence[OutboundRecord]) -> ScriptedBatch:
        self.rounds.append([number(r) for r in records])
        self.unsettled += 1
        self.most_unsettled = max(self.most_unsettled, self.unsettled)
        self.batches.append(ScriptedBatch(self, len(self.rounds) - 1, list(records)))
        return self.batches[-1]


class ScriptedBatch:
    complete = True

    def __init__(self, sink: ScriptedSink, round_no: int, records: list[OutboundRecord]) -> None:
        self.sink, self.round_no, self.records = sink, round_no, records
        self.settle = asyncio.Event()
        if not sink.hold:
            self.settle.set()

    async def outcomes(self) -> list[Outcome]:
        try:
            if self.sink.block:
                await self.sink.release.wait()
            await self.settle.wait()
        finally:
            self.sink.unsettled -= 1
        return [self.sink.script(self.round_no, r) or Delivered(r.topic, 0, number(r)) for r in self.records]


def drainer(spool: EventSpool, sink: Any, **overrides: Any) -> SpoolDrainer:
    options: dict[str, Any] = {
        "batch_size": 10,
        "backoff_initial": 0.01,
        "backoff_max": 0.02,
        "rng": random.Random(7),
    }
    return SpoolDrainer(spool, sink, **(options | overrides))


async def test_a_failure_resends_from_the_first_unacked_record(tmp_path: Path) -> None:
    def script(round_no: int, r: OutboundRecord) -> Outcome | None:
        if round_no == 0 and number(r) == 3:
            return DeliveryTimeout("no ack")
        if round_no == 0 and number(r) > 3 and number(r) % 2:
            return DeliveryFailed("not sent")
        return None  # delivered (4, 6, 8: "other partitions" that made it)

    sink = ScriptedSink(script)
    async with EventSpool(tmp_path / "s.db") as spool:
        await spool.append([record(n) for n in range(20)])
        async with drainer(spool, sink, max_in_flight=1) as running:
            await wait_until(lambda: spool.depth == 0, within=5, what="drained")
            metrics = running.metrics()
    assert sink.rounds[0] == list(range(10))
    # Round 2 starts with the failed 3, keeps spool order, skips only what Kafka acknowledged.
    assert sink.rounds[1] == [3, 5, 7, 9, 10, 11, 12, 13, 14, 15]
    assert sorted(n for r in sink.rounds for n in r) == sorted([*range(20), 3, 5, 7, 9])
    assert (metrics.delivered, metrics.retried, metrics.failed_rounds) == (20, 4, 1)


async def test_batches_in_flight_stop_at_the_first_failure_and_the_retry_starts_from_it(
    tmp_path: Path,
) -> None:
    # (The scripted sink has no partitions: that a later record of the failed one's
    # partition cannot be acknowledged before it is the producer's guarantee, which the
    # broker tests below check. Here: the drainer's own bookkeeping.)
    sink = ScriptedSink(
        lambda batch, r: DeliveryFailed("no leader") if (batch, number(r)) == (0, 4) else None
    )
    sink.hold = True
    async with EventSpool(tmp_path / "s.db") as spool:
        await spool.append([record(n) for n in range(60)])
        async with drainer(spool, sink, max_in_flight=3) as running:
            await wait_until(lambda: len(sink.rounds) == 3, within=5, what="three batches in flight")
            assert sink.rounds == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]
            sink.batches[0].settle.set()  # the oldest fails: nothing more may be handed over
            await wait_until(lambda: sink.unsettled == 2, within=5, what="the failed batch settled")
            sink.hold = False
            sink.batches[1].settle.set()
            sink.batches[2].settle.set()
            await wait_until(lambda: spool.depth == 0, within=5, what="drained")
            metrics = running.metrics()
    # The next round starts with the failed record; what later batches delivered is not resent.
    assert sink.rounds[3] == [4, *range(30, 39)]
    assert sorted(n for r in sink.rounds for n in r) == sorted([*range(60), 4])
    assert sink.most_unsettled == 3
    assert (metrics.delivered, metrics.retried, metrics.failed_rounds) == (60, 1, 1)


async def release_and_drain(sink: ScriptedSink, spool: EventSpool) -> None:
    """Settles every batch held so far and the ones to come, and waits for an empty spool."""
    sink.hold = False
    for batch in sink.batches:
        batch.settle.set()
    await wait_until(lambda: spool.depth == 0, within=5, what="drained")


async def test_records_go_out_while_earlier_batches_wait_for_kafka(tmp_path: Path) -> None:
    sink = ScriptedSink()
    sink.hold = True
    async with EventSpool(tmp_path / "s.db") as spool:
        await spool.append([record(n) for n in range(5)])
        async with drainer(spool, sink, linger=0.05):  # batches of 10
            await wait_until(lambda: len(sink.rounds) == 1, within=5, what="the first batch")
            await spool.append([record(n) for n in range(5, 17)])
            # Not after the first batch's acknowledgements: a full batch at once.
            await wait_until(lambda: len(sink.rounds) == 2, within=5, what="a full batch")
            assert sink.rounds == [list(range(5)), list(range(5, 15))]
            # The partial rest waits behind two unsettled batches, past its linger: as in
            # Kafka's producer, it would only wait unsent behind them, and it may still fill.
            await asyncio.sleep(0.05 * 4)
            assert sink.rounds == [list(range(5)), list(range(5, 15))]
            sink.batches[0].settle.set()
            # Behind one batch in flight, and past its linger already: at once.
            await wait_until(lambda: len(sink.rounds) == 3, within=5, what="the partial batch")
            assert sink.rounds[2] == [15, 16]
            assert sink.unsettled == 2
            await release_and_drain(sink, spool)


async def test_a_partial_batch_lingers_behind_one_batch_in_flight(tmp_path: Path) -> None:
    sink = ScriptedSink()
    sink.hold = True
    async with EventSpool(tmp_path / "s.db") as spool:
        await spool.append([record(n) for n in range(5)])
        async with drainer(spool, sink, linger=0.2):  # batches of 10
            await wait_until(lambda: len(sink.rounds) == 1, within=5, what="the first batch")
            handed_at = time.monotonic()
            await spool.append([record(n) for n in range(5, 8)])
            await spool.append([record(n) for n in range(8, 10)])
            # No batch of its own per append: the records gather for ``linger`` (from the
            # last hand-over), then go out together while the first batch is unsettled.
            await wait_until(lambda: len(sink.rounds) == 2, within=5, what="the partial batch")
            assert time.monotonic() - handed_at >= 0.1  # (observed late: half of it, to be sure)
            assert sink.rounds == [list(range(5)), list(range(5, 10))]
            assert sink.unsettled == 2
            await release_and_drain(sink, spool)


class GatedAcks(EventSpool):
    """The real spool, with acks that wait for ``ack_gate`` (and fail while ``ack_error`` is set)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.ack_gate = asyncio.Event()
        self.acks_waiting = 0
        self.ack_error: Exception | None = None

    async def ack(self, seqs: Sequence[int]) -> None:
        self.acks_waiting += 1
        try:
            await self.ack_gate.wait()
        finally:
            self.acks_waiting -= 1
        if self.ack_error is not None:
            error, self.ack_error = self.ack_error, None
            raise error
        await super().ack(seqs)


async def test_records_go_out_while_the_spool_writes_the_acks_of_earlier_ones(tmp_path: Path) -> None:
    sink = ScriptedSink()
    spool = GatedAcks(tmp_path / "s.db")
    async with spool:
        await spool.append([record(n) for n in range(5)])
        async with drainer(spool, sink):
            await wait_until(lambda: spool.acks_waiting == 1, within=5, what="the first batch's ack")
            await spool.append([record(n) for n in range(5, 8)])
            # Not behind the first batch's ack: that waits for the spool, this for Kafka.
            await wait_until(lambda: len(sink.rounds) == 2, within=5, what="the next batch")
            assert spool.depth == 8
            spool.ack_gate.set()
            await wait_until(lambda: spool.depth == 0, within=5, what="acked")
    assert sink.rounds == [list(range(5)), [5, 6, 7]]


async def test_an_ack_the_spool_could_not_write_breaks_the_round_and_the_records_go_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = ScriptedSink()
    spool = GatedAcks(tmp_path / "s.db")
    async with spool:
        spool.ack_error = OSError("disk I/O error")
        spool.ack_gate.set()
        await spool.append([record(n) for n in range(5)])
        async with drainer(spool, sink) as running:
            await wait_until(lambda: spool.depth == 0, within=5, what="delivered after all")
            assert running.metrics().delivered == 5
    assert "spool drainer round failed unexpectedly; retrying" in caplog.text
    assert "disk I/O error" in caplog.text
    assert sink.rounds == [list(range(5))] * 2  # at least once: sent again, Kafka drops nothing


async def test_rejected_records_go_to_dead_letters_and_the_rest_flows(tmp_path: Path) -> None:
    sink = ScriptedSink(lambda _r, rec: RecordRejected("too large") if number(rec) == 2 else None)
    async with EventSpool(tmp_path / "s.db") as spool:
        await spool.append([record(n) for n in range(5)])
        async with drainer(spool, sink) as running:
            await wait_until(lambda: spool.depth == 0, within=5, what="drained")
            assert running.metrics().dead_lettered == 1
        assert spool.dead_letters == 1
    assert sink.rounds == [[0, 1, 2, 3, 4]]  # never retried


async def test_one_log_line_per_state_change(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = ScriptedSink(lambda round_no, _r: KafkaUnavailable("refused") if round_no < 6 else None)
    caplog.set_level(logging.INFO, logger="adapter.events.delivery")
    async with EventSpool(tmp_path / "s.db") as spool:
        await spool.append([record(n) for n in range(300)])
        async with drainer(spool, sink, progress_interval=3600):
            await wait_until(lambda: spool.depth == 0, within=5, what="drained")
    messages = [r.getMessage() for r in caplog.records if r.name == "adapter.events.delivery"]
    down = [m for m in messages if m.startswith("Kafka unreachable since")]
    assert len(down) == 1
    assert "300 events spooled, retrying in" in down[0]
    assert sum(m.startswith("Kafka delivering again after") for m in messages) == 1
    assert len(messages) <= 3  # down, up, stopped: nothing per event or per round


async def test_stop_leaves_what_it_could_not_deliver_for_the_next_start(tmp_path: Path) -> None:
    stuck = ScriptedSink()
    stuck.block = True  # Kafka never answers
    async with EventSpool(tmp_path / "s.db") as spool:
        await spool.append([record(n) for n in range(25)])
        running = drainer(spool, stuck, stop_grace=0.2)
        await running.start()
        await wait_until(lambda: bool(stuck.rounds), within=5, what="a send")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await running.stop()
        assert loop.time() - started < 2
        assert spool.depth == 25

    healthy = ScriptedSink()
    async with EventSpool(tmp_path / "s.db") as spool, drainer(spool, healthy):
        await wait_until(lambda: spool.depth == 0, within=5, what="drained after restart")
    assert [n for r in healthy.rounds for n in r] == list(range(25))


async def test_stop_drains_what_it_can_within_the_grace(tmp_path: Path) -> None:
    sink = ScriptedSink()
    async with EventSpool(tmp_path / "s.db") as spool:
        await spool.append([record(n) for n in range(200)])
        running = drainer(spool, sink, batch_size=7, stop_grace=10)
        await running.start()
        await running.stop()
        assert spool.depth == 0
    assert [n for r in sink.rounds for n in r] == list(range(200))


# -- the real broker ------------------------------------------------------------------------


def assert_complete_and_in_order(consumed: list[Any], sent: list[OutboundRecord]) -> int:
    """Every sent record arrived; repeats are identical copies; per key, first
    occurrences keep the spool order. Returns the number of duplicates."""
    first_seen: dict[str, Any] = {}
    duplicates = 0
    for c in consumed:  # by (partition, offset): one key lives on one partition
        ce_id = dict(c.headers)["ce_id"].decode()
        if ce_id in first_seen:
            duplicates += 1
            assert (c.key, c.value) == (first_seen[ce_id].key, first_seen[ce_id].value)
            continue
        first_seen[ce_id] = c
    assert set(first_seen) == {r.ce_id for r in sent}, "records lost"
    per_key: dict[bytes, list[int]] = {}
    for c in sorted(first_seen.values(), key=lambda c: (c.partition, c.offset)):
        per_key.setdefault(c.key, []).append(int(c.value))
    for key, numbers in per_key.items():
        assert numbers == sorted(numbers), f"order broken for {key!r}"
    return duplicates


@pytest.mark.kafka
@pytest.mark.timeout(60)
async def test_delivers_recovered_and_new_records_in_order_per_key(
    tmp_path: Path, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic(partitions=3)
    sent = [record(n, topic=topic, keys=30) for n in range(3000)]
    async with EventSpool(tmp_path / "s.db") as spool:  # a previous run left these behind
        await spool.append(sent[:1000])
    async with (
        EventSpool(tmp_path / "s.db") as spool,
        KafkaSink(kafka_bootstrap, client_id="test-drainer") as sink,
        SpoolDrainer(spool, sink, batch_size=500) as running,
    ):
        for start in range(1000, 3000, 100):
            await spool.append(sent[start : start + 100])
        await wait_until(lambda: spool.depth == 0, within=30, what="spool drained")
        assert running.metrics().delivered == 3000
    consumed = await consume_all(kafka_bootstrap, topic, expected=3000)
    assert assert_complete_and_in_order(consumed, sent) == 0


@pytest.mark.kafka
@pytest.mark.timeout(90)
async def test_broker_outage_loses_nothing_and_keeps_order_per_key(
    tmp_path: Path, kafka_bootstrap: str, new_topic: TopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="adapter.events")
    topic = await new_topic(partitions=3)
    sent = [record(n, topic=topic, keys=50) for n in range(4000)]
    sink = KafkaSink(
        kafka_bootstrap,
        client_id="test-outage",
        request_timeout_ms=3000,
        delivery_timeout=3.0,
        start_timeout=3.0,
        stop_timeout=2.0,
    )
    async with (
        EventSpool(tmp_path / "s.db") as spool,
        sink,
        SpoolDrainer(spool, sink, batch_size=500, backoff_max=1.0, progress_interval=5.0) as running,
    ):
        await spool.append(sent[:500])
        await wait_until(lambda: spool.depth == 0, within=15, what="healthy delivery")

        stop_broker()
        try:
            for start in range(500, 3500, 100):  # a source keeps accepting events meanwhile
                await spool.append(sent[start : start + 100])
            await wait_until(lambda: running.state == "failing", within=15, what="the outage noticed")
            rounds = running.metrics().failed_rounds
            # ~10 s of outage; the drainer keeps retrying (no hang) and has not crashed.
            await wait_until(lambda: running.metrics().failing_for >= 10, within=20, what="a 10 s outage")
            await spool.append(sent[3500:])
            assert running.metrics().failed_rounds > rounds + 3
            assert spool.depth >= 3500
        finally:
            start_broker()
        await wait_until(lambda: spool.depth == 0, within=40, what="the spool to drain after the outage")
        # The round that emptied the spool reports the recovery as it ends, a loop step or two
        # after its last ack applied the empty depth: checked at once, the test raced it.
        await wait_until(
            lambda: running.metrics().state != "failing", within=5, what="the drainer to report the recovery"
        )
        assert running.metrics().delivered >= 4000

    consumed = await consume_all(kafka_bootstrap, topic, expected=4000)
    duplicates = assert_complete_and_in_order(consumed, sent)
    assert duplicates <= 1000  # at most what was in flight when the broker went away
    messages = [r.getMessage() for r in caplog.records if r.name == "adapter.events.delivery"]
    assert sum(m.startswith("Kafka unreachable since") for m in messages) == 1
    assert sum(m.startswith("Kafka delivering again after") for m in messages) == 1
