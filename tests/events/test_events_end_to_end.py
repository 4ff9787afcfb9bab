"""Vendor events onto a real Kafka broker, end to end: gRPC call -> simulator
WebSocket push -> spool -> Kafka record; signed webhook -> record; dead letters;
trace ids lining up; drops and stalls healed by backfill; EventService."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from grpc_health.v1 import health_pb2
from meshadapter.v1 import events_pb2, events_pb2_grpc
from octospine.v1 import common_pb2, webhooks_pb2, webhooks_pb2_grpc
from octospine.v1 import events_pb2 as octo_events
from openframe.v1 import alerts_pb2, alerts_pb2_grpc
from openframe.v1 import events_pb2 as of_events
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from adapter.runtime import MeshAdapter
from adapter.transcoding.json_codec import format_timestamp
from simulator import Simulator

from .kafka_fixtures import BOOTSTRAP, consume_all, wait_until
from .mesh_fixtures import WEBHOOK_SECRET, headers, health_of, mesh_settings

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = pytest.mark.usefixtures("kafka_bootstrap")


async def test_created_alert_reaches_its_topic(mesh: MeshAdapter, prefix: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.grpc_port}") as channel:
        alert = await alerts_pb2_grpc.AlertServiceStub(channel).CreateAlert(
            alerts_pb2.CreateAlertRequest(
                alert=alerts_pb2.Alert(
                    title="CPU on fire", severity=alerts_pb2.SEVERITY_CRITICAL, device_id="dev_002"
                )
            ),
            timeout=5,
        )
    [record] = [
        r
        for r in await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=1)
        if r.key == alert.id.encode()
    ]
    h = headers(record)
    assert h["ce_specversion"] == "1.0"
    assert h["ce_type"] == "io.openframe.alert.created"
    assert h["ce_source"].startswith("http://127.0.0.1:")
    assert h["ce_subject"] == alert.id
    event = of_events.AlertEvent.FromString(record.value)
    # Content-derived id: the same change seen live or backfilled is the same event.
    assert h["ce_id"] == f"openframe:alert:{alert.id}:{format_timestamp(event.alert.updated_at)}"
    assert h["content-type"] == "application/protobuf; proto=openframe.v1.AlertEvent"
    assert h["traceparent"].startswith("00-")
    assert (
        event.alert.title == "CPU on fire" and event.action == "created" and event.event_id.startswith("evt_")
    )


async def test_signed_webhook_reaches_its_topic(mesh: MeshAdapter, simulator: Simulator, prefix: str) -> None:
    assert mesh.events is not None and mesh.events.webhook is not None
    receiver = f"http://127.0.0.1:{mesh.events.webhook.port}/webhooks/octospine"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.grpc_port}") as channel:
        await webhooks_pb2_grpc.WebhookServiceStub(channel).CreateWebhook(
            webhooks_pb2.CreateWebhookRequest(
                webhook=webhooks_pb2.Webhook(
                    name="to mesh-adapter",
                    type=webhooks_pb2.WEBHOOK_TYPE_OUTGOING,
                    url=receiver,
                    events=["task.completed", "automation.triggered"],
                    active=True,
                    authentication=common_pb2.Authentication(type="hmac", secret=WEBHOOK_SECRET),
                )
            ),
            timeout=5,
        )
    [triggered] = await simulator.generate_events("octospine", "automation.triggered")
    records = await consume_all(BOOTSTRAP, f"{prefix}octospine.automation.triggered", expected=1)
    assert len(records) == 1
    event = octo_events.AutomationTriggeredEvent.FromString(records[0].value)
    assert event.automation_id == triggered["automation_id"]
    assert records[0].key == event.automation_id.encode()
    assert headers(records[0])["ce_type"] == "com.octospine.automation.triggered"


async def test_unknown_and_bad_events_are_dead_lettered(
    mesh: MeshAdapter, simulator: Simulator, prefix: str
) -> None:
    simulator.hubs["openframe"].publish("alerts", "alert_snoozed", {"id": "alt_x"})  # a type nobody routes
    simulator.hubs["openframe"].publish("alerts", "alert", {"id": 42})  # a routed type with a bad payload
    records = await consume_all(BOOTSTRAP, f"{prefix}meshadapter.deadletter", expected=2)
    reasons = sorted(headers(r)["dlq_reason"] for r in records)
    assert reasons == ["MALFORMED_EVENT", "UNKNOWN_EVENT_TYPE"]
    for record in records:
        h = headers(record)
        assert h["dlq_source"] == "openframe" and h["dlq_channel"] == "websocket"
        assert b'"type"' in record.value  # the raw frame is kept
    # The stream survived both.
    assert mesh.events is not None
    assert mesh.events.sources["openframe"].state.value == "streaming"


async def test_trace_ids_line_up_from_receipt_to_record(
    mesh: MeshAdapter, simulator: Simulator, prefix: str, span_exporter: InMemorySpanExporter
) -> None:
    [alert] = await simulator.generate_events("openframe", "alert")
    records = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=1)
    [record] = [r for r in records if r.key == alert["id"].encode()]
    _, trace_id, span_id, _ = headers(record)["traceparent"].split("-")
    spans = span_exporter.get_finished_spans()
    # The record carries the context of the span that received the event, so a
    # consumer that extracts it continues the event's trace...
    receive = next(s for s in spans if s.kind == SpanKind.CONSUMER and s.name.startswith("receive openframe"))
    assert (f"{receive.context.trace_id:032x}", f"{receive.context.span_id:016x}") == (trace_id, span_id)
    # ...and the batch's send span links to it, with the record's id.
    [producer] = [
        s
        for s in spans
        if s.kind == SpanKind.PRODUCER
        and any(link.context.span_id == receive.context.span_id for link in s.links)
    ]
    [link] = [link for link in producer.links if link.context.span_id == receive.context.span_id]
    assert link.attributes is not None
    assert link.attributes["messaging.message.id"] == headers(record)["ce_id"]
    assert producer.attributes is not None
    assert producer.attributes["messaging.destination.name"] == f"{prefix}openframe.alerts"


async def test_drops_and_stalls_lose_nothing_after_backfill(
    mesh: MeshAdapter, simulator: Simulator, prefix: str
) -> None:
    assert mesh.events is not None
    source = mesh.events.sources["openframe"]
    generator = asyncio.ensure_future(
        simulator.generate_events("openframe", "alert", count=300, rate_per_s=150)
    )
    await wait_until(lambda: source.counts["events"] >= 50, within=10, what="events to flow")
    assert simulator.ws_drop("openframe") == 1
    await wait_until(
        lambda: source.counts["reconnects"] >= 1 and source.streaming.is_set(), within=10, what="reconnect"
    )
    simulator.ws_stall("openframe", 3.0)  # silent: no events, no pongs
    await wait_until(lambda: source.counts["reconnects"] >= 2, within=10, what="stall detected")
    created = await generator
    records = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=len(created), within=60)
    seen = {r.key.decode() for r in records}
    missing = {a["id"] for a in created} - seen
    assert not missing, f"{len(missing)} alerts never reached Kafka"
    ids = [headers(r)["ce_id"] for r in records]
    # Duplicates only as identical ce_id values (here: none at all, thanks to the spool's dedupe).
    assert len(ids) == len(set(ids))


async def test_event_service_streams_and_resumes(
    mesh: MeshAdapter, simulator: Simulator, prefix: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.grpc_port}") as channel:
        stub = events_pb2_grpc.EventServiceStub(channel)
        await simulator.generate_events("openframe", "alert", count=3)
        await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=3)
        stream = stub.Subscribe(
            events_pb2.SubscribeRequest(
                topics=[f"{prefix}openframe.alerts"], start_from=events_pb2.START_FROM_EARLIEST
            ),
            timeout=20,
        )
        first: list[events_pb2.Event] = []
        async for event in stream:
            first.append(event)
            if len(first) == 2:
                break
        stream.cancel()
        assert first[0].type == "io.openframe.alert.created"
        payload = of_events.AlertEvent()
        assert first[0].data.Unpack(payload) and payload.alert.id == first[0].key

        resumed = stub.Subscribe(
            events_pb2.SubscribeRequest(topics=[f"{prefix}openframe.alerts"], resume_from=first[1].position),
            timeout=20,
        )
        nxt = await resumed.read()
        resumed.cancel()
        assert isinstance(nxt, events_pb2.Event)
        assert (nxt.partition, nxt.offset) not in {(e.partition, e.offset) for e in first}
        seen = {e.id for e in first} | {nxt.id}
        assert len(seen) == 3


async def test_slow_subscriber_does_not_grow_memory(mesh: MeshAdapter, prefix: str) -> None:
    """A client that stops reading stops the stream's Kafka reads: what the adapter
    holds for it stays bounded while 10 000 records wait on the topic."""
    assert mesh.events is not None and mesh.events.subscriptions is not None
    servicer = mesh.events.subscriptions
    topic = f"{prefix}openframe.devices"
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20)
    await producer.start()
    try:
        for i in range(10_000):
            await producer.send(topic, key=b"dev_001", value=b"x" * 200, headers=[("ce_id", f"{i}".encode())])
        await producer.flush()
    finally:
        await producer.stop()
    # BDP probing off: the client keeps a fixed 64 KiB window instead of growing
    # it to absorb megabytes into its own buffers, which would hide what the server does.
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{mesh.grpc_port}", options=[("grpc.http2.bdp_probe", 0)]
    ) as channel:
        stream = events_pb2_grpc.EventServiceStub(channel).Subscribe(
            events_pb2.SubscribeRequest(topics=[topic], start_from=events_pb2.START_FROM_EARLIEST), timeout=30
        )
        for _ in range(10):
            await stream.read()
        # The client now reads nothing; wait until the server side stops pulling.
        last, still = -1, 0
        while still < 10:
            await asyncio.sleep(0.1)
            still = still + 1 if servicer.fetched == last else 0
            last = servicer.fetched
        stream.cancel()
    assert servicer.fetched < 2_000, f"pulled {servicer.fetched} records for a client that read 10"


async def test_one_event_fans_out_to_several_topics(
    simulator: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    settings = mesh_settings(simulator, tmp_path, prefix, extra_topics={"openframe.alerts": ["siem.alerts"]})
    async with MeshAdapter(settings, tracer_provider=tracer_provider) as adapter:
        assert adapter.events is not None
        await asyncio.wait_for(adapter.events.sources["openframe"].streaming.wait(), 10)
        [alert] = await simulator.generate_events("openframe", "alert")
        main = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=1)
        copy = await consume_all(BOOTSTRAP, f"{prefix}siem.alerts", expected=1)
    assert [r.key for r in main] == [r.key for r in copy] == [alert["id"].encode()]
    assert headers(main[0])["ce_id"] == headers(copy[0])["ce_id"]
    assert main[0].value == copy[0].value


async def test_pipeline_gauges(
    simulator: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    settings = mesh_settings(simulator, tmp_path, prefix)
    async with MeshAdapter(settings, tracer_provider=tracer_provider, meter_provider=meters) as adapter:
        assert adapter.events is not None
        await asyncio.wait_for(adapter.events.sources["openframe"].streaming.wait(), 10)
        data = reader.get_metrics_data()
    meters.shutdown()
    assert data is not None
    points = {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert {"meshadapter.spool.depth", "meshadapter.delivery.failing_for"} <= set(points)
    streaming = [
        p.value
        for p in points["meshadapter.websocket.state"]
        if p.attributes == {"upstream": "openframe", "state": "streaming"}
    ]
    assert streaming == [1]


async def test_health_names_a_stream_that_gave_up(
    simulator: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    settings = mesh_settings(simulator, tmp_path, prefix)
    wrong = settings.upstreams["openframe"].model_copy(
        update={
            "auth": settings.upstreams["openframe"].auth.model_copy(update={"api_key": SecretStr("revoked")})
        }
    )
    settings = settings.model_copy(update={"upstreams": {**settings.upstreams, "openframe": wrong}})
    async with MeshAdapter(settings, tracer_provider=tracer_provider) as adapter:
        port = adapter.grpc_port
        serving, not_serving = (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        )
        status: dict[str, int] = {}

        async def poll() -> None:
            for name in (
                "meshadapter.events.openframe",
                "meshadapter.events.octospine",
                "meshadapter.v1.EventService",
            ):
                status[name] = await health_of(port, name)

        for _ in range(100):
            await poll()
            if status["meshadapter.events.openframe"] == not_serving:
                break
            await asyncio.sleep(0.1)
        assert status == {
            "meshadapter.events.openframe": not_serving,  # 401 at connect: the stream stopped
            "meshadapter.events.octospine": serving,
            "meshadapter.v1.EventService": serving,  # Kafka is fine
        }
        assert await health_of(port, "") == serving  # the RPCs of the other upstream still work
