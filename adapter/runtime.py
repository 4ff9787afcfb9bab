"""The whole adapter as one object: upstream callers, the gRPC server, and the
event pipeline (sources -> spool -> Kafka), started and stopped in order.

Start order: callers -> spool -> Kafka sink -> drainer -> webhook receiver ->
WebSocket sources -> gRPC server. Stop is the reverse, so nothing accepted is
left half-way: sources stop first, the drainer gets a grace period to empty
the spool, and what remains stays spooled for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from types import TracebackType

from google.protobuf.descriptor import FileDescriptor
from meshadapter.v1 import events_pb2_grpc
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from adapter.assembly.callers import build_credentials, build_upstream_caller
from adapter.config.settings import Settings
from adapter.descriptors.catalog import proto_files
from adapter.descriptors.loader import ServiceSpec, load_service_specs
from adapter.events.declarations import load_event_sources
from adapter.events.declared_sources import build_declared_sources
from adapter.events.delivery import SpoolDrainer
from adapter.events.encoding import EventEncoder
from adapter.events.intake import EventIntake
from adapter.events.kafka_sink import KafkaSink, KafkaUnavailable
from adapter.events.metrics import register_event_gauges
from adapter.events.routing import EventRouter, load_event_routes, topic_name
from adapter.events.spool import EventSpool
from adapter.events.watermarks import WatermarkStore
from adapter.events.webhook_receiver import WebhookReceiver
from adapter.events.websocket_source import StreamState, WebSocketSource
from adapter.server.app import AdapterServer, ExtraService
from adapter.server.event_service import EventStreamServicer
from adapter.telemetry.redaction import redacted_wire_names
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.credentials import CredentialProvider

__all__ = ["MeshAdapter"]

logger = logging.getLogger(__name__)

EVENT_SERVICE = "meshadapter.v1.EventService"
HEALTH_INTERVAL_SECONDS = 1.0


@dataclass
class EventPipeline:
    """The running parts of the event fan-out (for health, metrics and tests)."""

    spool: EventSpool
    sink: KafkaSink
    drainer: SpoolDrainer
    intake: EventIntake
    watermarks: WatermarkStore
    webhook: WebhookReceiver | None = None
    sources: dict[str, WebSocketSource] = field(default_factory=dict)
    subscriptions: EventStreamServicer | None = None


class MeshAdapter:
    """Everything ``python -m adapter`` runs."""

    def __init__(
        self,
        settings: Settings,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.settings = settings
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._codec = JsonCodec()
        self.credentials: dict[str, CredentialProvider] = {}
        self.callers: dict[str, UpstreamCaller] = {}
        self.events: EventPipeline | None = None
        self.server: AdapterServer | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._files: list[FileDescriptor] = []
        self._specs: list[ServiceSpec] = []

    async def start(self) -> None:
        # The generated protos plus the configured descriptor sets, read once.
        self._files = proto_files(self.settings.descriptors.descriptor_sets)
        self._specs = load_service_specs(files=self._files)
        for name, upstream in self.settings.upstreams.items():
            self.credentials[name] = build_credentials(name, upstream)
            self.callers[name] = build_upstream_caller(
                name,
                upstream,
                credentials=self.credentials[name],
                tracer_provider=self._tracer_provider,
                meter_provider=self._meter_provider,
                methods=[m for s in self._specs if s.upstream == name for m in s.methods],
            )
        extra: list[ExtraService] = []
        if self.settings.events.enabled:
            self.events, servicer = await self._start_events()
            extra.append(
                (
                    EVENT_SERVICE,
                    lambda server: events_pb2_grpc.add_EventServiceServicer_to_server(servicer, server),
                )
            )
        self.server = AdapterServer(
            self.settings, tracer_provider=self._tracer_provider, callers=self.callers, extra_services=extra
        )
        await self.server.start()
        if self.events is not None:
            self._health_task = asyncio.create_task(self._report_event_health(), name="event-health")

    async def _report_event_health(self) -> None:
        """Health names beside the RPC services, for load balancers and on-call:
        ``meshadapter.v1.EventService`` follows Kafka (the stream reads from it), and
        ``meshadapter.events.<upstream>`` each WebSocket stream (NOT_SERVING once it gave up)."""
        assert self.events is not None and self.server is not None
        known: dict[str, bool] = {}
        while True:
            wanted = {EVENT_SERVICE: self.events.drainer.state != "failing"}
            for name, source in self.events.sources.items():
                wanted[f"meshadapter.events.{name}"] = source.state is not StreamState.FAILED
            for service, serving in wanted.items():
                if known.get(service) is not serving:
                    await self.server.set_serving(service, serving)
                    known[service] = serving
            await asyncio.sleep(HEALTH_INTERVAL_SECONDS)

    async def _start_events(self) -> tuple[EventPipeline, EventStreamServicer]:
        cfg = self.settings.events
        routes = load_event_routes(cfg, self._files)
        router = EventRouter(routes)
        declarations = load_event_sources(self._files, specs=self._specs, routes=routes)
        dead_letter_topic = topic_name(cfg.dead_letter_topic, cfg)
        encoder = EventEncoder(
            router,
            self._codec,
            source_uris={n: str(u.base_url).rstrip("/") for n, u in self.settings.upstreams.items()},
            json_topics=frozenset(cfg.json_topics),
            dead_letter_topic=dead_letter_topic,
            max_depth=cfg.max_payload_depth,
            redacted_keys=redacted_wire_names(self._files),
        )
        spool = EventSpool(
            cfg.spool.path,
            max_records=cfg.spool.max_records,
            max_bytes=cfg.spool.max_bytes,
            synchronous=cfg.spool.synchronous,
            dedupe_window=cfg.spool.dedupe_window,
        )
        intake = EventIntake(encoder, spool, tracer_provider=self._tracer_provider)
        watermarks = WatermarkStore(cfg.spool.path.with_name("watermarks.json"))
        # Every configured upstream that declares a stream or webhooks in its protos; built
        # (and its configuration checked) before anything starts.
        sources = build_declared_sources(
            declarations,
            self.settings,
            intake=intake,
            watermarks=watermarks,
            transcoders=self._transcoders(),
            callers=self.callers,
            credentials=self.credentials,
            codec=self._codec,
        )
        await spool.start()
        sink = KafkaSink(
            cfg.kafka.bootstrap_servers,
            client_id=cfg.kafka.client_id,
            request_timeout_ms=int(cfg.kafka.request_timeout_seconds * 1000),
            start_timeout=cfg.kafka.lifecycle_timeout_seconds,
            stop_timeout=cfg.kafka.lifecycle_timeout_seconds,
            delivery_timeout=max(cfg.kafka.delivery_timeout_seconds, cfg.kafka.request_timeout_seconds + 1),
            linger_ms=cfg.kafka.linger_ms,
            tracer_provider=self._tracer_provider,
        )
        await sink.start()
        topics = [*router.topics(), dead_letter_topic]
        try:
            created = await sink.ensure_topics(topics)
            if created:
                logger.info("created Kafka topics: %s", ", ".join(created))
        except KafkaUnavailable as exc:
            logger.warning("Kafka not reachable at start (%s): events are spooled until it is", exc)
        drainer = SpoolDrainer(
            spool, sink, batch_size=cfg.kafka.batch_size, stop_grace=cfg.kafka.stop_grace_seconds
        )
        await drainer.start()
        pipeline = EventPipeline(
            spool=spool, sink=sink, drainer=drainer, intake=intake, watermarks=watermarks
        )
        if sources.webhook is not None:
            pipeline.webhook = sources.webhook
            await sources.webhook.start()
        for name, source in sources.streams.items():
            pipeline.sources[name] = source
            await source.start()

        servicer = EventStreamServicer(
            bootstrap_servers=cfg.kafka.bootstrap_servers,
            topics=router.topics(),
            message_types={r.full_name: r.message_type for r in routes},
            codec=self._codec,
        )
        pipeline.subscriptions = servicer
        register_event_gauges(pipeline, self._meter_provider)
        return pipeline, servicer

    def _transcoders(self) -> dict[str, MethodTranscoder]:
        out: dict[str, MethodTranscoder] = {}
        for service in self._specs:
            upstream = self.settings.upstreams.get(service.upstream)
            if upstream is None:
                continue
            for method in service.methods:
                if method.graphql is None:  # backfill reads over REST
                    out[method.path] = MethodTranscoder(method, self._codec, upstream.pagination)
        return out

    async def stop(self, grace: float | None = None) -> None:
        """Stops in reverse order of start; idempotent."""
        health, self._health_task = self._health_task, None
        if health is not None:
            health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health
        server, self.server = self.server, None
        if server is not None:
            await server.stop(grace)
        events, self.events = self.events, None
        if events is not None:
            for source in events.sources.values():
                await source.stop()
            if events.webhook is not None:
                await events.webhook.stop()
            await events.drainer.stop()
            await events.sink.stop()
            await events.spool.stop()
            events.watermarks.flush()
        callers, self.callers = self.callers, {}
        for caller in callers.values():
            await caller.aclose()

    @property
    def grpc_port(self) -> int:
        return self.server.port if self.server is not None else 0

    async def wait_for_termination(self) -> None:
        if self.server is not None:
            await self.server.wait_for_termination()

    async def __aenter__(self) -> MeshAdapter:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop(0)
