"""KafkaSink against the real broker: round trip, tracing, rejection, and bounded waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from adapter.events.kafka_sink import (
    Delivered,
    DeliveryError,
    KafkaSink,
    KafkaUnavailable,
    RecordRejected,
)
from adapter.events.records import OutboundRecord
from tests.events.kafka_fixtures import (
    TopicFactory,
    consume_all,
    delete_topics,
    start_broker,
    stop_broker,
    wait_until,
)

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(60)]

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-01".encode()


def record(
    topic: str, n: int, *, key: bytes | None = b"device-1", traceparent: bool = True
) -> OutboundRecord:
    headers: tuple[tuple[str, bytes], ...] = (("ce_id", b"e-%d" % n), ("ce_type", b"device.updated"))
    if traceparent:
        headers += (("traceparent", TRACEPARENT),)
    headers += (("content-type", b"application/json"),)
    return OutboundRecord(topic=topic, key=key, value=b'{"n": %d}' % n, headers=headers, ce_id=f"e-{n}")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def sink(kafka_bootstrap: str, exporter: InMemorySpanExporter) -> AsyncIterator[KafkaSink]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with KafkaSink(kafka_bootstrap, client_id="test-sink", tracer_provider=provider) as opened:
        yield opened


async def test_round_trip_keeps_keys_values_and_headers(
    sink: KafkaSink, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic()
    records = [record(topic, n, key=b"device-%d" % (n % 3)) for n in range(30)]
    records.append(record(topic, 99, key=None))
    outcomes = await sink.send_batch(records)
    assert all(isinstance(o, Delivered) for o in outcomes), outcomes

    consumed = await consume_all(kafka_bootstrap, topic, expected=len(records))
    by_id = {dict(c.headers)["ce_id"].decode(): c for c in consumed}
    assert len(consumed) == len(by_id) == len(records)
    for sent, outcome in zip(records, outcomes, strict=True):
        got = by_id[sent.ce_id]
        assert isinstance(outcome, Delivered)
        assert (got.partition, got.offset) == (outcome.partition, outcome.offset)
        assert (got.key, got.value) == (sent.key, sent.value)
        # The same headers in the same order: traceparent stays the event's creation context.
        assert list(got.headers) == list(sent.headers)


SPAN_ATTRIBUTES: dict[str, object] = {
    "messaging.system": "kafka",
    "messaging.operation.type": "send",
    "messaging.operation": "publish",
    "messaging.operation.name": "send",
    "messaging.client.id": "test-sink",
    "messaging.batch.message_count": 3,
    "meshadapter.kafka.delivered_count": 3,
}


async def test_one_send_span_per_batch_links_each_records_creation_context(
    sink: KafkaSink, kafka_bootstrap: str, new_topic: TopicFactory, exporter: InMemorySpanExporter
) -> None:
    topic = await new_topic()
    outcomes = await sink.send_batch([record(topic, n) for n in range(3)])
    assert all(isinstance(o, Delivered) for o in outcomes)

    (span,) = exporter.get_finished_spans()
    assert span.name == f"send {topic}"
    assert span.kind is SpanKind.PRODUCER
    assert span.parent is None  # the records' traces are linked, not parents
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    for name, expected in {**SPAN_ATTRIBUTES, "messaging.destination.name": topic}.items():
        assert span.attributes.get(name) == expected, name
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [
        (TRACE_ID, PARENT_SPAN_ID)
    ] * 3
    assert [link.attributes and link.attributes["messaging.message.id"] for link in span.links] == [
        "e-0",
        "e-1",
        "e-2",
    ]
    consumed = await consume_all(kafka_bootstrap, topic, expected=3)
    assert {dict(c.headers)["traceparent"] for c in consumed} == {TRACEPARENT}  # a consumer continues it


async def test_a_large_batch_gets_a_span_per_128_records(
    sink: KafkaSink, new_topic: TopicFactory, exporter: InMemorySpanExporter
) -> None:
    topic = await new_topic()
    outcomes = await sink.send_batch([record(topic, n) for n in range(300)])
    assert all(isinstance(o, Delivered) for o in outcomes)
    spans = exporter.get_finished_spans()
    assert [s.attributes and s.attributes["messaging.batch.message_count"] for s in spans] == [128, 128, 44]
    assert [len(s.links) for s in spans] == [128, 128, 44]
    assert sum(int((s.attributes or {})["meshadapter.kafka.delivered_count"]) for s in spans) == 300


async def test_a_record_without_traceparent_is_sent_as_it_is(
    sink: KafkaSink, kafka_bootstrap: str, new_topic: TopicFactory, exporter: InMemorySpanExporter
) -> None:
    topic = await new_topic()
    await sink.send(record(topic, 1, traceparent=False))
    (span,) = exporter.get_finished_spans()
    assert span.links == ()
    (consumed,) = await consume_all(kafka_bootstrap, topic, expected=1)
    assert "traceparent" not in dict(consumed.headers)


async def test_a_rejected_record_does_not_hold_back_the_others(
    sink: KafkaSink, kafka_bootstrap: str, new_topic: TopicFactory, exporter: InMemorySpanExporter
) -> None:
    topic = await new_topic()
    too_big = OutboundRecord(topic=topic, key=b"device-1", value=b"x" * 2_000_000, headers=(), ce_id="big")
    outcomes = await sink.send_batch([record(topic, 1), too_big, record(topic, 2)])
    assert isinstance(outcomes[0], Delivered)
    assert isinstance(outcomes[1], RecordRejected)
    assert not outcomes[1].retriable
    assert isinstance(outcomes[2], Delivered)
    assert sink.rebuilds == 0  # a bad record is not the producer's fault
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RecordRejected"
    assert span.attributes["meshadapter.kafka.delivered_count"] == 2
    consumed = await consume_all(kafka_bootstrap, topic, expected=2)
    assert [c.value for c in consumed] == [b'{"n": 1}', b'{"n": 2}']


async def test_ensure_topics_creates_only_the_missing_ones(
    sink: KafkaSink, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    existing = await new_topic()
    fresh = existing + "-fresh"
    try:
        assert await sink.ensure_topics([existing, fresh], partitions=3) == [fresh]
        assert await sink.ensure_topics([existing, fresh]) == []
        delivered = await sink.send(record(fresh, 1, key=b"k"))
        assert delivered.partition in (0, 1, 2)
    finally:
        await delete_topics(kafka_bootstrap, [fresh])


async def test_nothing_listening_fails_fast_and_start_does_not_raise(unused_tcp_port: int) -> None:
    async with KafkaSink(f"127.0.0.1:{unused_tcp_port}", start_timeout=2) as sink:
        assert not sink.connected
        (outcome,) = await sink.send_batch([record("t", 1)])
        assert isinstance(outcome, KafkaUnavailable)
        assert outcome.retriable
        with pytest.raises(KafkaUnavailable):
            await sink.ensure_topics(["t"])


async def test_a_broker_that_never_answers_cannot_hang_start() -> None:
    # Accepts connections, never answers: aiokafka would wait request_timeout_ms (10 s) per try.
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client hangs up

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with KafkaSink(f"127.0.0.1:{port}", start_timeout=1.0, stop_timeout=1.0) as sink:
            (outcome,) = await sink.send_batch([record("t", 1)])
        assert isinstance(outcome, KafkaUnavailable)
        assert loop.time() - started < 4.0  # two bounded start attempts, not 2 x 10 s
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_stop_is_bounded_when_the_broker_is_gone(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    topic = await new_topic()
    sink = KafkaSink(kafka_bootstrap, delivery_timeout=30.0, stop_timeout=2.0)
    await sink.start()
    await sink.send(record(topic, 0))  # connected, metadata known
    records = [record(topic, n, key=b"device-%d" % (n % 5)) for n in range(1, 201)]
    stop_broker()
    try:
        sending = asyncio.create_task(sink.send_batch(records))
        await wait_until(lambda: sink.in_flight == len(records), within=10, what="sends handed over")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await sink.stop()  # aiokafka's own stop() would wait for those batches for ever (#1101)
        assert loop.time() - started < 2.0 + 1.0
        outcomes = await asyncio.wait_for(sending, 2.0)  # released at once, not after 30 s
        assert all(isinstance(o, DeliveryError) and o.retriable for o in outcomes)
    finally:
        start_broker()


async def test_each_key_lands_where_aiokafkas_send_would_put_it(
    sink: KafkaSink, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    """The sink builds its own partition batches: its partitioner must be the producer's,
    or a key would move partitions (and lose its order) against other producers."""
    from aiokafka import AIOKafkaProducer

    topic = await new_topic()
    keys = [b"device-%d" % n for n in range(40)]
    outcomes = await sink.send_batch([record(topic, n, key=key) for n, key in enumerate(keys)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        expected = [(await producer.send_and_wait(topic, value=b"x", key=key)).partition for key in keys]
    finally:
        await producer.stop()
    got = [o.partition for o in outcomes if isinstance(o, Delivered)]
    assert got == expected
    assert len(set(got)) > 1  # the keys did spread: the comparison means something


async def test_records_beyond_one_batch_keep_their_order_and_offsets(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic()
    records = [record(topic, n, key=b"device-%d" % (n % 2)) for n in range(200)]
    # ~150 bytes a record: a 1 KiB batch holds a handful, so each partition gets many batches.
    async with KafkaSink(kafka_bootstrap, client_id="test-small-batches", max_batch_size=1024) as small:
        outcomes = await small.send_batch(records)
    assert all(isinstance(o, Delivered) for o in outcomes), outcomes
    consumed = await consume_all(kafka_bootstrap, topic, expected=len(records))
    by_id = {dict(c.headers)["ce_id"].decode(): c for c in consumed}
    for sent, outcome in zip(records, outcomes, strict=True):
        assert isinstance(outcome, Delivered)
        assert (by_id[sent.ce_id].partition, by_id[sent.ce_id].offset) == (outcome.partition, outcome.offset)
    for key in (b"device-0", b"device-1"):
        in_log = sorted((c for c in consumed if c.key == key), key=lambda c: c.offset)
        assert [c.value for c in in_log] == [r.value for r in records if r.key == key]
