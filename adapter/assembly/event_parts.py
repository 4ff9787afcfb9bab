"""The event pipeline, built once and handed back as lifecycle parts in start
order: spool -> Kafka sink -> drainer -> webhook receiver -> streams.

Everything is built (and every declared source's configuration checked) before
anything starts, so a configuration mistake leaves nothing running. Health is
pushed: each stream's state feeds ``meshadapter.events.<upstream>``, the
drainer's Kafka state feeds ``meshadapter.v1.EventService``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from adapter.config.settings import Settings
from adapter.events.declared_sources import build_declared_sources
from adapter.events.delivery import SpoolDrainer
from adapter.events.encoding import EventEncoder
from adapter.events.intake import EventIntake
from adapter.events.kafka_connection import KafkaConnection
from adapter.events.kafka_sink import KafkaSink, KafkaUnavailable
from adapter.events.metrics import register_event_metrics
from adapter.events.pipeline import EventPipeline
from adapter.events.routing import EventRouter, topic_name
from adapter.events.spool import EventSpool
from adapter.events.watermarks import Watermarks, WatermarkStore
from adapter.events.websocket_source import StreamState
from adapter.lifecycle import HealthBoard, Part, Supervisor, part
from adapter.resilience.rate_limiter import UpstreamRateLimiter
from adapter.server.event_service import EventStreamServicer
from adapter.server.stream_caps import SubscribeStreamCaps
from adapter.telemetry.redaction import redacted_wire_names
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.credentials import CredentialProvider

from .catalog import Catalog
from .coordination_parts import coordination_parts, quota_membership, shared_watermarks, stream_ownership

__all__ = ["EVENT_SERVICE", "build_event_pipeline", "event_parts"]

logger = logging.getLogger(__name__)

EVENT_SERVICE = "meshadapter.v1.EventService"


def build_event_pipeline(
    catalog: Catalog,
    settings: Settings,
    *,
    codec: JsonCodec,
    transcoders: Mapping[str, MethodTranscoder],
    callers: Mapping[str, UpstreamCaller],
    credentials: Mapping[str, CredentialProvider],
    board: HealthBoard,
    supervisor: Supervisor,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    limiters: Sequence[UpstreamRateLimiter] = (),
) -> EventPipeline:
    """The pipeline, not started; ``limiters`` (the upstream callers' rate limiters)
    follow this replica's quota share when ``events.coordination`` is on."""
    cfg = settings.events
    router = EventRouter(list(catalog.routes))
    dead_letter_topic = topic_name(cfg.dead_letter_topic, cfg)
    encoder = EventEncoder(
        router,
        codec,
        source_uris={n: str(u.base_url).rstrip("/") for n, u in settings.upstreams.items()},
        json_topics=frozenset(cfg.json_topics),
        dead_letter_topic=dead_letter_topic,
        max_depth=cfg.max_payload_depth,
        redacted_keys=redacted_wire_names(catalog.files),
    )
    spool = EventSpool(
        cfg.spool.path,
        max_records=cfg.spool.max_records,
        max_bytes=cfg.spool.max_bytes,
        synchronous=cfg.spool.synchronous,
        dedupe_window=cfg.spool.dedupe_window,
        on_failure=lambda why: board.set(EVENT_SERVICE, False, why),
    )
    intake = EventIntake(encoder, spool, tracer_provider=tracer_provider)
    # One connection (TLS context, SASL password file read once) for every Kafka client.
    kafka = KafkaConnection.from_settings(cfg.kafka)
    sink = KafkaSink(
        kafka,
        client_id=cfg.kafka.client_id,
        request_timeout_ms=int(cfg.kafka.request_timeout_seconds * 1000),
        start_timeout=cfg.kafka.lifecycle_timeout_seconds,
        stop_timeout=cfg.kafka.lifecycle_timeout_seconds,
        delivery_timeout=max(cfg.kafka.delivery_timeout_seconds, cfg.kafka.request_timeout_seconds + 1),
        tracer_provider=tracer_provider,
    )
    shared = None
    if cfg.coordination.enabled:
        shared = shared_watermarks(settings, kafka, sink, spool, router.routes)
    watermarks: Watermarks = shared or WatermarkStore(cfg.spool.path.with_name("watermarks.json"))
    sources = build_declared_sources(
        catalog.declarations,
        settings,
        intake=intake,
        watermarks=watermarks,
        transcoders=transcoders,
        callers=callers,
        credentials=credentials,
        codec=codec,
        supervisor=supervisor,
        limiters=limiters,
    )
    drainer = SpoolDrainer(
        spool,
        sink,
        batch_size=cfg.kafka.batch_size,
        max_in_flight=cfg.kafka.max_in_flight_batches,
        linger=cfg.kafka.linger_ms / 1000,
        stop_grace=cfg.kafka.stop_grace_seconds,
        supervisor=supervisor,
        on_health=lambda serving, why: board.set(EVENT_SERVICE, serving, why),
        health_name=EVENT_SERVICE,
    )
    pipeline = EventPipeline(
        spool=spool,
        sink=sink,
        drainer=drainer,
        intake=intake,
        watermarks=watermarks,
        webhook=sources.webhook,
        sources=dict(sources.streams),
    )
    if shared is not None:
        pipeline.ownership = stream_ownership(settings, kafka, pipeline.sources, shared, supervisor)
        pipeline.quota = quota_membership(settings, kafka, limiters, supervisor, board)
    for name, source in pipeline.sources.items():
        health_name = source.health_name = f"meshadapter.events.{name}"
        board.set(health_name, True)

        def follow(state: StreamState, detail: str, health_name: str = health_name) -> None:
            board.set(health_name, state is not StreamState.FAILED, detail)

        source.listen(follow)
    board.set(EVENT_SERVICE, True)
    pipeline.subscriptions = EventStreamServicer(
        bootstrap_servers=kafka,
        topics=router.topics(),
        message_types={r.full_name: r.message_type for r in catalog.routes},
        codec=codec,
        caps=SubscribeStreamCaps(
            total=settings.security.limits.max_subscribe_streams,
            per_principal=settings.security.limits.max_subscribe_streams_per_principal,
        ),
    )
    register_event_metrics(pipeline, meter_provider)
    return pipeline


def event_parts(pipeline: EventPipeline, topics: list[str]) -> list[Part]:
    """The pipeline's lifecycle parts, in start order."""

    async def start_sink() -> None:
        await pipeline.sink.start()
        try:
            created = await pipeline.sink.ensure_topics(topics)
            if created:
                logger.info("created Kafka topics: %s", ", ".join(created))
        except KafkaUnavailable as exc:
            logger.warning("Kafka not reachable at start (%s): events are spooled until it is", exc)

    async def stop_spool() -> None:
        await pipeline.spool.stop()
        pipeline.watermarks.flush()

    ownership = pipeline.ownership
    parts: list[Part] = [
        part("event spool", pipeline.spool.start, stop_spool),
        part("kafka sink", start_sink, pipeline.sink.stop),
    ]
    if ownership is not None:
        parts += coordination_parts(ownership, pipeline.spool, pipeline.quota)[:1]
    parts.append(part("spool drainer", pipeline.drainer.start, pipeline.drainer.stop))
    if pipeline.webhook is not None:
        parts.append(part("webhook receiver", pipeline.webhook.start, pipeline.webhook.stop))
    if ownership is not None:
        parts += coordination_parts(ownership, pipeline.spool, pipeline.quota)[1:]
    else:
        for name, source in pipeline.sources.items():
            parts.append(part(f"{name} stream", source.start, source.stop))
    return parts
