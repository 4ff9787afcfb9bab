"""The Kafka ``send`` spans are lean spans (the drainer's hot path), chunked by the link limit."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapter.events.kafka_tracing import MAX_LINKS, ProducerTracing, creation_context
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


VALID_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
VALID_SPAN = 0xB7AD6B7169203331


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        (TRACEPARENT, (VALID_TRACE, VALID_SPAN, 1)),
        (TRACEPARENT[:-2] + b"00", (VALID_TRACE, VALID_SPAN, 0)),  # unsampled: still linked
        (TRACEPARENT[:-2] + b"09", (VALID_TRACE, VALID_SPAN, 9)),  # flags kept as they are
        (b"ff" + TRACEPARENT[2:], None),  # version ff is invalid
        (TRACEPARENT.upper(), None),  # hex is lower case
        (b"00-" + b"0" * 32 + TRACEPARENT[35:], None),  # an all-zero trace id
        (TRACEPARENT[:36] + b"0" * 16 + b"-01", None),  # an all-zero span id
        (TRACEPARENT + b"-extra", None),
        (TRACEPARENT[:-1], None),
        (b"00-0x" + TRACEPARENT[5:], None),  # what int(..., 16) alone would accept
        (b"", None),
    ],
)
def test_a_records_creation_context_is_its_traceparent_or_none(
    traceparent: bytes, expected: tuple[int, int, int] | None
) -> None:
    context = creation_context((("ce_id", b"e-1"), ("traceparent", traceparent)))
    if expected is None:
        assert context is None
    else:
        assert context is not None and context.is_remote
        assert (context.trace_id, context.span_id, context.trace_flags) == expected


def test_a_record_without_traceparent_has_no_creation_context() -> None:
    assert creation_context((("ce_id", b"e-1"), ("content-type", b"application/json"))) is None
