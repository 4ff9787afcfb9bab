"""Gauges of the event pipeline, read when the metrics are collected: how much
is spooled and for how long, how delivery goes, and each WebSocket stream's state."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter

from .pipeline import EventPipeline

__all__ = ["register_event_gauges"]

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


def register_event_gauges(pipeline: EventPipeline, meter_provider: MeterProvider | None) -> None:
    """Observable gauges over ``pipeline`` (no-ops without a meter provider)."""
    meter = get_meter(__name__, meter_provider=meter_provider)

    def gauge(name: str, unit: str, description: str, read: Callable[[], Iterable[Observation]]) -> None:
        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            return read()

        meter.create_observable_gauge(name, callbacks=[callback], unit=unit, description=description)

    gauge(
        "meshadapter.spool.depth",
        "{event}",
        "events waiting for Kafka",
        lambda: [Observation(pipeline.spool.depth)],
    )
    gauge(
        "meshadapter.spool.bytes",
        "By",
        "bytes waiting for Kafka",
        lambda: [Observation(pipeline.spool.bytes)],
    )
    gauge(
        "meshadapter.spool.oldest_age",
        "s",
        "age of the oldest event waiting for Kafka",
        lambda: [Observation(pipeline.spool.oldest_pending_age)],
    )
    gauge(
        "meshadapter.delivery.delivered",
        "{event}",
        "events Kafka acknowledged since start",
        lambda: [Observation(pipeline.drainer.metrics().delivered)],
    )
    gauge(
        "meshadapter.delivery.failing_for",
        "s",
        "seconds since Kafka started failing (0 when healthy)",
        lambda: [Observation(pipeline.drainer.metrics().failing_for)],
    )

    def streams() -> list[Observation]:
        return [
            Observation(1 if source.state.value == state else 0, {"upstream": name, "state": state})
            for name, source in pipeline.sources.items()
            for state in _STREAM_STATES
        ]

    gauge("meshadapter.websocket.state", "1", "1 for each stream's current state", streams)
