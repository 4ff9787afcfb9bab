"""The event pipeline's metrics, read when metrics are collected (no cost per event).

Counts that only grow are observable *counters* (Prometheus ``_total``); levels
are gauges. Kafka publishing and reading also follow OpenTelemetry's messaging
conventions (``messaging.client.sent.messages``, ``messaging.client.consumed.messages``
with ``messaging.system=kafka``), so stock messaging dashboards work unchanged.

| name | kind | attributes |
|---|---|---|
| ``meshadapter.spool.depth`` / ``.bytes`` / ``.oldest_age`` | gauge | |
| ``meshadapter.delivery.failing_for`` | gauge (s) | |
| ``meshadapter.delivery.delivered`` / ``.retried`` / ``.dead_lettered`` | counter | |
| ``meshadapter.delivery.failed_rounds`` | counter | |
| ``meshadapter.kafka.producer.rebuilds`` | counter | |
| ``meshadapter.events.accepted`` / ``.duplicates`` | counter | stream (``source.channel``) |
| ``meshadapter.events.dead_lettered`` | counter | source, reason |
| ``meshadapter.websocket.state`` | gauge (1 for the current state) | upstream, state |
| ``meshadapter.websocket.reconnects`` / ``.crashes`` / ``.frames`` | counter | upstream |
| ``meshadapter.websocket.backfill_failures`` | counter | upstream |
| ``meshadapter.webhook.deliveries`` | counter | outcome |
| ``meshadapter.webhook.connections`` | gauge | |
| ``meshadapter.webhook.connection_refusals`` | counter | |
| ``meshadapter.subscribe.streams`` | gauge | |
| ``messaging.client.sent.messages`` | counter | messaging.system, messaging.operation.name |
| ``messaging.client.consumed.messages`` | counter | messaging.system, messaging.operation.name |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter

from .pipeline import EventPipeline

__all__ = ["register_event_metrics"]

_STREAM_STATES = (
    "idle",
    "connecting",
    "subscribing",
    "backfilling",
    "streaming",
    "backing_off",
    "failed",
    "stopped",
)
_KAFKA = "kafka"

Read = Callable[[], Iterable[Observation]]


@runtime_checkable
class SubscribeCounts(Protocol):
    """What adapter.server.event_service's servicer counts (not imported: server -> events)."""

    fetched: int
    sent: int
    open_streams: int
    refused_unreachable: int


def _by(label: str, counts: Mapping[str, int]) -> list[Observation]:
    return [Observation(value, {label: key}) for key, value in counts.items()]


def register_event_metrics(pipeline: EventPipeline, meter_provider: MeterProvider | None) -> None:
    """Registers the instruments over ``pipeline`` (no-ops without a meter provider)."""
    meter = get_meter(__name__, meter_provider=meter_provider)

    def callback(read: Read) -> Callable[[CallbackOptions], Iterable[Observation]]:
        return lambda _options: read()

    def gauge(name: str, unit: str, description: str, read: Read) -> None:
        meter.create_observable_gauge(name, callbacks=[callback(read)], unit=unit, description=description)

    def counter(name: str, unit: str, description: str, read: Read) -> None:
        meter.create_observable_counter(name, callbacks=[callback(read)], unit=unit, description=description)

    spool, drainer, sink, intake = pipeline.spool, pipeline.drainer, pipeline.sink, pipeline.intake
    gauge(
        "meshadapter.spool.depth", "{event}", "Events waiting for Kafka", lambda: [Observation(spool.depth)]
    )
    gauge("meshadapter.spool.bytes", "By", "Bytes waiting for Kafka", lambda: [Observation(spool.bytes)])
    gauge(
        "meshadapter.spool.oldest_age",
        "s",
        "Age of the oldest event waiting for Kafka",
        lambda: [Observation(spool.oldest_pending_age)],
    )
    gauge(
        "meshadapter.delivery.failing_for",
        "s",
        "Seconds since Kafka started failing (0 when healthy)",
        lambda: [Observation(drainer.metrics().failing_for)],
    )
    for field, description in (
        ("delivered", "Events Kafka acknowledged"),
        ("retried", "Record sends that failed and are sent again"),
        ("dead_lettered", "Events the drainer moved to the dead-letter topic"),
        ("failed_rounds", "Delivery rounds that failed (Kafka down or refusing)"),
    ):
        counter(
            f"meshadapter.delivery.{field}",
            "{event}" if field != "failed_rounds" else "{round}",
            description,
            lambda field=field: [Observation(getattr(drainer.metrics(), field))],  # type: ignore[misc]
        )
    counter(
        "messaging.client.sent.messages",
        "{message}",
        "Records published to Kafka and acknowledged",
        lambda: [
            Observation(
                drainer.metrics().delivered,
                {"messaging.system": _KAFKA, "messaging.operation.name": "send"},
            )
        ],
    )
    counter(
        "meshadapter.kafka.producer.rebuilds",
        "{rebuild}",
        "Kafka producers closed and built again after a fatal error",
        lambda: [Observation(sink.rebuilds)],
    )
    counter(
        "meshadapter.events.accepted",
        "{event}",
        "Vendor events spooled, per stream",
        lambda: _by("stream", intake.stats.accepted),
    )
    counter(
        "meshadapter.events.duplicates",
        "{event}",
        "Vendor events dropped as already spooled (same id)",
        lambda: _by("stream", intake.stats.duplicates),
    )

    def dead_letters() -> list[Observation]:
        observations = []
        for key, value in intake.stats.dead_lettered.items():
            source, _, reason = key.rpartition(".")
            observations.append(Observation(value, {"source": source, "reason": reason}))
        return observations

    counter(
        "meshadapter.events.dead_lettered",
        "{event}",
        "Vendor events sent to the dead-letter topic, by reason",
        dead_letters,
    )

    def states() -> list[Observation]:
        return [
            Observation(1 if source.state.value == state else 0, {"upstream": name, "state": state})
            for name, source in pipeline.sources.items()
            for state in _STREAM_STATES
        ]

    gauge("meshadapter.websocket.state", "1", "1 for each stream's current state", states)
    for count, unit, description in (
        ("reconnects", "{reconnect}", "WebSocket sessions opened again after a drop"),
        ("crashes", "{crash}", "WebSocket stream tasks that died and were restarted"),
        ("frames", "{frame}", "WebSocket frames received"),
        (
            "backfill_failures",
            "{backfill}",
            "Backfills that failed (the watermark stays; the gap is read again after a reconnect)",
        ),
    ):
        counter(
            f"meshadapter.websocket.{count}",
            unit,
            description,
            lambda count=count: [  # type: ignore[misc]
                Observation(source.counts[count], {"upstream": name})
                for name, source in pipeline.sources.items()
            ],
        )
    webhook = pipeline.webhook
    if webhook is not None:
        counter(
            "meshadapter.webhook.deliveries",
            "{delivery}",
            "Webhook deliveries received, by outcome",
            lambda: _by("outcome", webhook.counts),
        )
        gauge(
            "meshadapter.webhook.connections",
            "{connection}",
            "Connections open on the webhook port",
            lambda: [Observation(webhook.connections.open)],
        )
        counter(
            "meshadapter.webhook.connection_refusals",
            "{connection}",
            "Connections the webhook port closed at once: events.webhook.max_connections were open",
            lambda: [Observation(webhook.connections.refused)],
        )
    subscriptions = pipeline.subscriptions
    if isinstance(subscriptions, SubscribeCounts):
        gauge(
            "meshadapter.subscribe.streams",
            "{stream}",
            "EventService.Subscribe streams open",
            lambda: [Observation(subscriptions.open_streams)],
        )
        counter(
            "messaging.client.consumed.messages",
            "{message}",
            "Records EventService.Subscribe read from Kafka",
            lambda: [
                Observation(
                    subscriptions.fetched,
                    {"messaging.system": _KAFKA, "messaging.operation.name": "receive"},
                )
            ],
        )
        counter(
            "meshadapter.subscribe.sent",
            "{event}",
            "Events EventService.Subscribe sent to callers",
            lambda: [Observation(subscriptions.sent)],
        )
        counter(
            "meshadapter.subscribe.kafka_unreachable",
            "{call}",
            "EventService.Subscribe calls refused UNAVAILABLE because Kafka was unreachable",
            lambda: [Observation(subscriptions.refused_unreachable)],
        )
