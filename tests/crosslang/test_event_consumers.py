"""Kafka consumers in other languages read what the adapter publishes.

A JVM consumer (kafka-clients + the CloudEvents SDK's Kafka binding) and a Go
consumer (IBM/sarama + the CloudEvents Go SDK) read every topic the adapter
writes: the topics of the ``(meshadapter.options.v1.event)`` options in their
own generated code, plus the dead-letter topic. Each record is decoded as a
CloudEvent, its ``data`` parsed as the typed protobuf event, and its key,
``ce_*`` attributes and ``traceparent`` checked against the protos. The records
are real: a running adapter publishes them from simulator pushes and signed
webhooks onto the real broker. The consumers print what they read and what they
found wrong; the tests compare that with the Python consumer's view, and feed
them copies of real records with one header broken to show that they notice.
See docs/crosslang.md.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer, ConsumerRecord
from octospine.v1 import common_pb2, webhooks_pb2, webhooks_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from adapter.config.settings import EventsSettings
from adapter.events.routing import load_event_routes
from adapter.runtime import MeshAdapter
from simulator import Simulator

from ..events.kafka_fixtures import BOOTSTRAP, consume_all, create_topic, delete_topics
from ..events.test_events_end_to_end import WEBHOOK_SECRET, mesh_settings
from .test_crosslang import BUILD, go_binary, java_main, run_json

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = [pytest.mark.crosslang, pytest.mark.kafka, pytest.mark.usefixtures("kafka_bootstrap")]

DEAD_LETTER = "meshadapter.deadletter"
# Every route's default topic and the message it carries, from the same options
# the consumers read in their own generated code.
ROUTES = {t: r.full_name for r in load_event_routes(EventsSettings()) for t in r.topics}


def go_consumer() -> list[str]:
    return [go_binary(BUILD / "crosslang-go-consumer", "the Go Kafka consumer")]


def java_consumer() -> list[str]:
    return list(java_main("meshadapter.crosslang.EventConsumer").argv)


CONSUMERS: dict[str, Callable[[], list[str]]] = {"go": go_consumer, "java": java_consumer}


async def consume(language: str, prefix: str) -> dict[str, Any]:
    args = [*CONSUMERS[language](), "--bootstrap", BOOTSTRAP, "--prefix", prefix]
    return await run_json(args, f"the {language} Kafka consumer")


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


@pytest_asyncio.fixture
async def written(
    simulator: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> AsyncIterator[dict[str, list[ConsumerRecord[Any, Any]]]]:
    """Every topic the adapter writes, with records it published: one change of
    each kind pushed on both WebSockets, the webhook-only events through a signed
    webhook, and a frame nobody routes (dead-lettered). Read back with aiokafka."""
    adapter = MeshAdapter(mesh_settings(simulator, tmp_path, prefix), tracer_provider=tracer_provider)
    await adapter.start()
    try:
        assert adapter.events is not None and adapter.events.webhook is not None
        for source in adapter.events.sources.values():
            await asyncio.wait_for(source.streaming.wait(), 10)
        receiver = f"http://127.0.0.1:{adapter.events.webhook.port}/webhooks/octospine"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{adapter.grpc_port}") as channel:
            await webhooks_pb2_grpc.WebhookServiceStub(channel).CreateWebhook(
                webhooks_pb2.CreateWebhookRequest(
                    webhook=webhooks_pb2.Webhook(
                        name="to mesh-adapter",
                        type=webhooks_pb2.WEBHOOK_TYPE_OUTGOING,
                        url=receiver,
                        events=["task.completed", "task.failed", "automation.triggered"],
                        active=True,
                        authentication=common_pb2.Authentication(type="hmac", secret=WEBHOOK_SECRET),
                    )
                ),
                timeout=5,
            )
        for kind in ("alert", "device", "security_event"):
            await simulator.generate_events("openframe", kind)
        # A task runs to completion: task.progress pushes, then a task.completed webhook.
        for kind in ("task", "alert.new", "automation.triggered", "system.status"):
            await simulator.generate_events("octospine", kind)
        # And one that fails halfway: a task.failed webhook.
        simulator.octospine.tasks.create(
            {"name": "doomed", "type": "x", "parameters": {"simulate_failure": True}}
        )
        simulator.hubs["openframe"].publish("alerts", "alert_snoozed", {"id": "alt_x"})  # nobody routes it
        # The tasks' ends come last (their progress events before them).
        await consume_all(BOOTSTRAP, prefix + "octospine.task.completed", expected=1, within=30)
        await consume_all(BOOTSTRAP, prefix + "octospine.task.failed", expected=1, within=30)
        yield {
            prefix + t: await consume_all(BOOTSTRAP, prefix + t, expected=1) for t in [*ROUTES, DEAD_LETTER]
        }
    finally:
        await adapter.stop(0)


def _headers(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


@pytest.mark.parametrize("language", ["java", "go"])
async def test_consumer_reads_every_topic_and_finds_nothing_wrong(
    language: str, written: dict[str, list[ConsumerRecord[Any, Any]]], prefix: str
) -> None:
    result = await consume(language, prefix)
    assert result["violations"] == []
    seen = {(r["topic"], r["partition"], r["offset"]): r for r in result["records"]}
    # Exactly the records the Python consumer read, none skipped, none invented.
    expected = {(t, r.partition, r.offset): r for t, records in written.items() for r in records}
    assert seen.keys() >= expected.keys()
    assert {t for t, _, _ in seen} == set(written), "a topic the adapter writes was not read"
    for where, record in expected.items():
        mine = seen[where]
        assert mine["key"] == (record.key.decode() if record.key is not None else None), where
        assert mine["ce_id"] == _headers(record)["ce_id"], where
        assert mine["ce_type"] == _headers(record)["ce_type"], where
        default_topic = where[0].removeprefix(prefix)
        if default_topic != DEAD_LETTER:  # parsed as the topic's typed message
            assert mine["message"] == ROUTES[default_topic], where


@dataclass(frozen=True)
class Mutation:
    """One thing broken in a copy of a real record, and what a consumer must say."""

    name: str
    #: Part of the one violation expected for the copy; empty: none expected.
    expected: str
    drop: str = ""
    headers: dict[str, bytes] = field(default_factory=dict)
    key: bytes | None = None
    value: bytes | None = None

    def apply(self, record: ConsumerRecord[Any, Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        headers = {k: v for k, v in record.headers if k != self.drop} | self.headers
        return self.key or record.key, self.value or record.value, list(headers.items())


ZERO_TRACE = b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01"
DEVICE_EVENT = b"application/protobuf; proto=openframe.v1.DeviceEvent"
MUTATIONS = [
    Mutation("untouched", ""),
    Mutation("no traceparent", "traceparent header missing", drop="traceparent"),
    Mutation("bad traceparent", "is not a W3C trace context", headers={"traceparent": ZERO_TRACE}),
    Mutation(
        "wrong ce_type",
        "ce_type is io.openframe.alert.deleted",
        headers={"ce_type": b"io.openframe.alert.deleted"},
    ),
    Mutation(
        "wrong content-type",
        "content-type is " + DEVICE_EVENT.decode(),
        headers={"content-type": DEVICE_EVENT},
    ),
    Mutation("no ce_time", "ce_time missing", drop="ce_time"),
    Mutation("wrong ce_subject", "ce_subject is alt_other", headers={"ce_subject": b"alt_other"}),
    Mutation("key of another alert", "key is alt_other", key=b"alt_other"),
    Mutation("no ce_specversion", "CloudEvent", drop="ce_specversion"),
    Mutation("payload not the message", "data is not a openframe.v1.AlertEvent", value=b"\xff\xff\xff"),
]


@pytest.mark.parametrize("language", ["java", "go"])
async def test_consumer_names_a_broken_header(
    language: str, written: dict[str, list[ConsumerRecord[Any, Any]]], prefix: str
) -> None:
    """Copies of a real alert record, each with one thing broken, on a topic of
    their own: the consumer flags each copy for exactly that, and not the intact one."""
    [original, *_] = written[prefix + "openframe.alerts"]
    scratch = f"t{uuid.uuid4().hex[:8]}."
    topic = scratch + "openframe.alerts"
    await create_topic(BOOTSTRAP, topic, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    offsets: dict[int, str] = {}
    try:
        for mutation in MUTATIONS:
            key, value, headers = mutation.apply(original)
            sent = await producer.send_and_wait(topic, value, key=key, headers=headers, partition=0)
            offsets[sent.offset] = mutation.name
        result = await consume(language, scratch)
    finally:
        await producer.stop()
        await delete_topics(BOOTSTRAP, [topic])
    assert sorted(r["offset"] for r in result["records"]) == sorted(offsets)
    found: dict[str, list[str]] = {m.name: [] for m in MUTATIONS}
    for violation in result["violations"]:
        where, _, what = violation.partition(": ")
        found[offsets[int(where.rsplit("@", 1)[1])]].append(what)
    for m in MUTATIONS:
        if not m.expected:
            assert found[m.name] == [], f"{m.name}: {found[m.name]}"
        else:
            assert len(found[m.name]) == 1 and m.expected in found[m.name][0], f"{m.name}: {found[m.name]}"
