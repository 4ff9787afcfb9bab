"""The Kafka ``send`` spans are lean spans (the drainer's hot path), chunked by the link limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from adapter.events.encoding import VendorEvent
from adapter.events.kafka_tracing import MAX_LINKS, ProducerTracing, creation_context
from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool
from adapter.telemetry.lean_tracer import LeanSpan

from .encoder_fixtures import default_encoder

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


@pytest.mark.parametrize(
    ("indices", "counts"),
    [
        ([], [0, 0, 0]),
        ([0], [1, 0, 0]),
        ([MAX_LINKS - 1, MAX_LINKS], [1, 1, 0]),
        ([3, 2 * MAX_LINKS + 1], [1, 0, 1]),  # a span in between gets none
        (list(range(5, 2 * MAX_LINKS + 3)), [MAX_LINKS - 5, MAX_LINKS, 3]),
    ],
)
def test_delivered_counts_each_span_its_own_records(indices: list[int], counts: list[int]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    batch = ProducerTracing(provider, client_id="mesh-adapter").start(records(2 * MAX_LINKS + 3))
    batch.delivered(indices)
    batch.end()
    assert [
        span.attributes and span.attributes["meshadapter.kafka.delivered_count"]
        for span in exporter.get_finished_spans()
    ] == counts


def test_send_spans_are_lean_and_link_every_record() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    batch = ProducerTracing(provider, client_id="mesh-adapter").start(records(MAX_LINKS + 5))
    assert all(isinstance(span, LeanSpan) for span in batch._spans)  # not the SDK's fallback
    # Two partition batches' records, interleaved across the two spans (each ascending).
    batch.delivered(list(range(0, MAX_LINKS + 5, 2)))
    batch.delivered(list(range(1, MAX_LINKS + 5, 2)))
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
RECEIPT_WITH_STATE = SpanContext(
    0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "x1")])
)


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


def sent_links(records: list[OutboundRecord]) -> list[Link]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    batch = ProducerTracing(provider, client_id="mesh-adapter").start(records)
    batch.end()
    [span] = exporter.get_finished_spans()
    return list(span.links)


def encoded_alert(context: Context) -> list[OutboundRecord]:
    """An OpenFrame alert's records as the intake's encoder makes them under ``context``."""
    encoder = default_encoder()
    event = VendorEvent(
        source="openframe", type="alert", id="evt-1", data={"id": "alt_1", "severity": "high"}
    )
    return encoder.records(event, context=context)


def test_a_fresh_record_links_to_the_receipt_span_it_was_made_under() -> None:
    """The encoder keeps the receipt span's context beside the header it wrote, and the
    send span links to that context as it is (this process's span, its trace state kept)."""
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("receive openframe") as receipt:
        records = encoded_alert(set_span_in_context(NonRecordingSpan(RECEIPT_WITH_STATE), Context()))
        unrelated = receipt.get_span_context()
    assert records and all(record.creation == RECEIPT_WITH_STATE for record in records)
    assert unrelated != RECEIPT_WITH_STATE  # the context given, not merely the current one
    # The header names the same span, so a consumer continues that trace.
    parsed = creation_context(records[0].headers)
    assert parsed is not None and (parsed.trace_id, parsed.span_id) == (
        RECEIPT_WITH_STATE.trace_id,
        RECEIPT_WITH_STATE.span_id,
    )
    links = sent_links(records)
    assert [link.context for link in links] == [RECEIPT_WITH_STATE] * len(records)
    assert not links[0].context.is_remote and links[0].context.trace_state == RECEIPT_WITH_STATE.trace_state


def test_a_record_made_without_a_span_has_no_creation_context() -> None:
    records = encoded_alert(Context())
    assert records and all(record.creation is None for record in records)
    assert all(name != "traceparent" for record in records for name, _ in record.headers)
    assert sent_links(records) == []


async def test_a_record_read_back_from_the_spool_links_through_its_header(tmp_path: Path) -> None:
    """After a restart the spool gives back only what it stored, the headers: the link is
    parsed from ``traceparent`` and marked remote; the record equals the one first made."""
    [fresh, *_] = encoded_alert(set_span_in_context(NonRecordingSpan(RECEIPT_WITH_STATE), Context()))
    assert fresh.creation == RECEIPT_WITH_STATE
    async with EventSpool(tmp_path / "spool.db") as spool:
        assert await spool.append([fresh]) == [True]
    async with EventSpool(tmp_path / "spool.db") as reopened:
        [(_, read_back)] = await reopened.pending(10)
    assert read_back == fresh and read_back.creation is None
    [link] = sent_links([read_back])
    assert link.context.is_remote
    assert (link.context.trace_id, link.context.span_id) == (
        RECEIPT_WITH_STATE.trace_id,
        RECEIPT_WITH_STATE.span_id,
    )
