"""The Kafka ``send`` spans are lean spans (the drainer's hot path), chunked by the link limit."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapter.events.kafka_tracing import MAX_LINKS, ProducerTracing
from adapter.events.records import OutboundRecord
from adapter.telemetry.lean_tracer import LeanSpan

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def records(count: int) -> list[OutboundRecord]:
    return [
        OutboundRecord(
            topic="device.events",
            key=b"d-1",
            value=b"{}",
            headers=(("traceparent", TRACEPARENT),),
            ce_id=f"e-{n}",
        )
        for n in range(count)
    ]


def test_send_spans_are_lean_and_link_every_record() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    batch = ProducerTracing(provider, client_id="mesh-adapter").start(records(MAX_LINKS + 5))
    assert all(isinstance(span, LeanSpan) for span in batch._spans)  # not the SDK's fallback
    for index in range(MAX_LINKS + 5):
        batch.delivered(index)
    batch.end()
    spans = exporter.get_finished_spans()
    assert [len(span.links) for span in spans] == [MAX_LINKS, 5]
    assert [link.attributes and link.attributes["messaging.message.id"] for link in spans[1].links] == [
        f"e-{n}" for n in range(MAX_LINKS, MAX_LINKS + 5)
    ]
    assert [span.attributes and span.attributes["meshadapter.kafka.delivered_count"] for span in spans] == [
        MAX_LINKS,
        5,
    ]
