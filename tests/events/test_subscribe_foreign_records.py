"""Records another producer put on an event topic, end to end (the real broker, a real
channel): a record Subscribe cannot read whole still goes out, without what it could
not read, and the stream goes on past it. Before, a null header value or a ``ce_time``
out of range ended every subscriber's stream at that offset, and again on each resume."""

from __future__ import annotations

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from meshadapter.v1 import events_pb2, events_pb2_grpc

from adapter.runtime import MeshAdapter

from .kafka_fixtures import BOOTSTRAP

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = pytest.mark.usefixtures("kafka_bootstrap")

KEY = b"foreign-producer"
FOREIGN = [
    ("null-header", [("ce_id", b"null-header"), ("ce_type", None), ("ce_time", b"2026-12-04T03:00:00Z")]),
    ("before-year-one", [("ce_id", b"before-year-one"), ("ce_time", b"0001-01-01T00:00:00+05:00")]),
    ("after-9999", [("ce_id", b"after-9999"), ("ce_time", b"9999-12-31T23:59:59-05:00")]),
    ("plain", [("ce_id", b"plain"), ("ce_time", b"2026-12-04T03:00:01Z")]),
]


async def test_records_subscribe_cannot_read_whole_go_out_and_the_stream_goes_on(
    mesh: MeshAdapter, prefix: str
) -> None:
    topic = f"{prefix}openframe.devices"
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    try:
        for _, headers in FOREIGN:
            await producer.send_and_wait(topic, key=KEY, value=b"{not json", headers=headers)
    finally:
        await producer.stop()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.grpc_port}") as channel:
        stream = events_pb2_grpc.EventServiceStub(channel).Subscribe(
            events_pb2.SubscribeRequest(
                topics=[topic],
                filter=events_pb2.EventFilter(keys=[KEY.decode()]),
                start_from=events_pb2.START_FROM_EARLIEST,
            ),
            timeout=30,
        )
        got = [await stream.read() for _ in FOREIGN]
        stream.cancel()
    assert [e.id for e in got] == [name for name, _ in FOREIGN]
    by_id = {e.id: e for e in got}
    assert by_id["null-header"].type == "" and by_id["null-header"].time.seconds > 0
    assert not by_id["before-year-one"].HasField("time")
    assert not by_id["after-9999"].HasField("time")
    assert by_id["plain"].HasField("time") and not by_id["plain"].HasField("data")
    assert [e.offset for e in got] == sorted(e.offset for e in got)


async def test_a_topic_named_many_times_is_streamed_once(mesh: MeshAdapter, prefix: str) -> None:
    """A request naming one topic 50,000 times asked Kafka for its metadata 50,000
    times: past the 10 s allowed, the stream was refused UNAVAILABLE ("Kafka is
    unreachable"). Each topic is now asked for, and streamed, once."""
    topic = f"{prefix}openframe.devices"
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    try:
        for n in range(3):
            await producer.send_and_wait(
                topic, key=b"named-often", value=b"{}", headers=[("ce_id", b"%d" % n)]
            )
    finally:
        await producer.stop()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.grpc_port}") as channel:
        stream = events_pb2_grpc.EventServiceStub(channel).Subscribe(
            events_pb2.SubscribeRequest(
                topics=[topic] * 50_000,
                filter=events_pb2.EventFilter(keys=["named-often"]),
                start_from=events_pb2.START_FROM_EARLIEST,
            ),
            timeout=30,
        )
        got = [await stream.read() for _ in range(3)]
        stream.cancel()
    assert [e.id for e in got] == ["0", "1", "2"]
