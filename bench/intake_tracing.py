"""What a span per received event costs: the intake's encode path (route, decode
into the typed message, CloudEvents headers, traceparent) for a batch of vendor
alert events, with tracing off, and with the SDK recording one span per event
(batch exporter to a sink that drops them, as an OTLP exporter would ship them),
once with the SDK's own span and once with the lean span the intake makes
(``adapter/telemetry/lean_tracer.py``).

    python -m bench.intake_tracing
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from adapter.config.settings import EventsSettings
from adapter.events.encoding import EventEncoder, VendorEvent
from adapter.events.routing import EventRouter, load_event_routes
from adapter.telemetry.lean_tracer import LeanTracer
from adapter.transcoding.json_codec import JsonCodec

N = 1000 if os.environ.get("BENCH_SMOKE") == "1" else 20000


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _events() -> list[VendorEvent]:
    return [
        VendorEvent(
            source="openframe",
            type="alert",
            id=f"evt_{i:06d}",
            action="created",
            timestamp="2026-11-25T12:00:00.123Z",
            data={
                "id": f"alt_{i:05d}",
                "title": f"Disk almost full {i}",
                "severity": "high",
                "device_id": "dev_001",
                "status": "open",
                "created_at": "2026-11-25T12:00:00.123Z",
                "updated_at": "2026-11-25T12:00:00.123Z",
            },
        )
        for i in range(N)
    ]


def _run(tracer: trace.Tracer | LeanTracer, encoder: EventEncoder, events: list[VendorEvent]) -> float:
    started = time.perf_counter()
    for event in events:
        with tracer.start_as_current_span("receive openframe alert", kind=trace.SpanKind.CONSUMER):
            encoder.records(event)
    return N / (time.perf_counter() - started)


def main() -> None:
    encoder = EventEncoder(EventRouter(load_event_routes(EventsSettings())), JsonCodec(), source_uris={})
    events = _events()
    off = _run(trace.NoOpTracerProvider().get_tracer(__name__), encoder, events)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=N))
    on = _run(provider.get_tracer(__name__), encoder, events)
    lean = _run(LeanTracer(provider, __name__), encoder, events)
    provider.shutdown()
    print(f"{'intake encode path, ' + str(N) + ' alert events':<44} {'events/s':>9} {'us/event':>9}")
    print(f"{'tracing off':<44} {off:>9.0f} {1e6 / off:>9.1f}")
    print(f"{'one span per event (SDK, batch exporter)':<44} {on:>9.0f} {1e6 / on:>9.1f}")
    print(f"{'one span per event (lean, as the intake)':<44} {lean:>9.0f} {1e6 / lean:>9.1f}")
    print(f"span cost per event: SDK {1e6 / on - 1e6 / off:.1f} us, lean {1e6 / lean - 1e6 / off:.1f} us")


if __name__ == "__main__":
    main()
