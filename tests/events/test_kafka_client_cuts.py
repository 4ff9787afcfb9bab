"""Kafka clients cut short leave no connection open: a start cut while its bootstrap
waits for the cluster's metadata (``aiokafka_compat.start_client``), a group
consumer's stop that overruns (``aiokafka_compat.stop_consumer``), and a Subscribe
stream whose Kafka is unreachable, refused UNAVAILABLE. The real broker, behind a
proxy that stops forwarding requests, or frozen with SIGSTOP: a broker that hangs
(a long GC pause, a wedged load balancer)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from meshadapter.v1 import events_pb2, events_pb2_grpc

from adapter.events.aiokafka_compat import start_client, stop_consumer
from adapter.server.event_service import EventStreamServicer
from adapter.transcoding.json_codec import JsonCodec

from .kafka_fixtures import TopicFactory, paused_broker, wait_until

pytest_plugins = ["tests.events.kafka_fixtures"]


class StallingProxy:
    """Forwards every answer and the first ``forward`` Kafka requests of each
    connection; the others are read and held, never forwarded."""

    def __init__(self, bootstrap: str, *, forward: int) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self._broker = (host, int(port))
        self._forward = forward
        self.open = 0  # client connections the client has not closed
        self.held = 0  # requests held back
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def bootstrap(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.open += 1
        up_reader, up_writer = await asyncio.open_connection(*self._broker)
        answers = asyncio.create_task(self._pump(up_reader, writer))
        try:
            forwarded = 0
            while True:
                size = await reader.readexactly(4)
                body = await reader.readexactly(int.from_bytes(size, "big"))
                if forwarded >= self._forward:
                    self.held += 1
                else:
                    up_writer.write(size + body)
                    forwarded += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            self.open -= 1  # the client closed its connection
        finally:
            answers.cancel()
            up_writer.close()
            writer.close()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()


async def _stop(client: Any) -> None:
    await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())


CLIENTS: dict[str, Callable[[str], Any]] = {
    "producer": lambda bootstrap: AIOKafkaProducer(bootstrap_servers=bootstrap),
    "consumer": lambda bootstrap: AIOKafkaConsumer(bootstrap_servers=bootstrap),
    "admin client": lambda bootstrap: AIOKafkaAdminClient(bootstrap_servers=bootstrap),
}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_start_cut_during_bootstrap_leaves_no_connection_open(
    kafka_bootstrap: str, kind: str
) -> None:
    async with StallingProxy(kafka_bootstrap, forward=1) as proxy:  # ApiVersions only
        client = CLIENTS[kind](proxy.bootstrap)
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.0):
                    await start_client(client)
            assert proxy.held >= 1  # cut while its metadata request was held
            # aiokafka alone keeps this connection open until garbage collection
            await wait_until(lambda: proxy.open == 0, within=5, what="the bootstrap connection closed")
        finally:
            await _stop(client)
    gc.collect()  # an unclosed connection would warn here (filterwarnings = error)


async def test_a_start_that_is_not_cut_connects(kafka_bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        async with asyncio.timeout(20):
            await start_client(producer)
        assert producer.client.cluster.brokers()
    finally:
        await producer.stop()


def connections_to(port: int) -> int:
    """This process's established TCP connections to ``port`` on 127.0.0.1."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = str(fd.readlink())
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/self/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and int(remote.split(":")[1], 16) == port and inode in inodes:  # 01: ESTABLISHED
            count += 1
    return count


async def test_a_group_consumer_whose_stop_overruns_leaves_no_connection_open(
    kafka_bootstrap: str, new_topic: TopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await new_topic()
    port = int(kafka_bootstrap.rsplit(":", 1)[1])
    before = connections_to(port)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=f"{topic}-group", enable_auto_commit=False
    )
    consumer.subscribe([topic])
    async with asyncio.timeout(30):
        await start_client(consumer)
        while not consumer.assignment():  # a member of a generation: its stop sends LeaveGroup
            await consumer.getmany(timeout_ms=200)
    assert connections_to(port) > before
    loop = asyncio.get_running_loop()
    with paused_broker():
        started = loop.time()
        await stop_consumer(consumer, within=1.0, name="the test's member")  # aiokafka's waits 40 s
        took = loop.time() - started
        open_after = connections_to(port)
    assert 1.0 <= took < 1.0 + 1.0
    assert open_after == before  # aiokafka alone keeps them open until garbage collection
    said = [r.getMessage() for r in caplog.records if r.name == "adapter.events.aiokafka_compat"]
    assert said == [
        "the test's member did not stop cleanly within 1.0s (TimeoutError()); closing its connections"
    ]


async def test_subscribe_with_kafka_unreachable_is_refused_unavailable(unused_tcp_port: int) -> None:
    servicer = EventStreamServicer(
        bootstrap_servers=f"127.0.0.1:{unused_tcp_port}",  # nothing listens: bootstrap fails at once
        topics=["t.alerts"],
        message_types={},
        codec=JsonCodec(),
        metadata_timeout_seconds=5.0,
    )
    server = grpc.aio.server()
    events_pb2_grpc.add_EventServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = events_pb2_grpc.EventServiceStub(channel).Subscribe(
                events_pb2.SubscribeRequest(topics=["t.alerts"]), timeout=10
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call.read()
    finally:
        await server.stop(None)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert refused.value.details() == "Kafka is unreachable; retry later"
    status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
    assert status is not None
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(retry)
    assert (info.reason, info.domain, dict(info.metadata)) == ("KAFKA_UNREACHABLE", "mesh-adapter", {})
    assert retry.retry_delay.seconds == 5
    assert str(unused_tcp_port) not in status.SerializeToString().decode("latin-1")  # the address: logs only
    assert servicer.open_streams == 0
    assert servicer.refused_unreachable == 1
    gc.collect()  # its consumer was stopped: no "Unclosed AIOKafkaConsumer" (filterwarnings = error)
