"""PRODUCER spans for Kafka sends, batch by batch (OpenTelemetry messaging conventions).

Each record already carries its *creation context* in ``traceparent``: the span
that received the vendor event (set by the source on receipt), so a consumer that
extracts it continues the event's trace. Sending is a batch operation, so, as the
messaging conventions describe for batch publishing, one ``send`` span covers a
batch (at most :data:`MAX_LINKS` records, the SDK's default link limit) and *links*
to each record's creation context, with the record's id on the link. The span
counts what Kafka acknowledged and turns ERROR with the first failure's type.

A record still in the process that received its event has that context in memory
too (``OutboundRecord.creation``): parsing the header back was half of these spans'
cost. Only a record read back from the spool is parsed, and its link's context is
then marked remote (it came from outside this process's memory).

One span per record instead cost ~45 µs a record with the SDK (extract, start,
inject, end): half of the spool-to-Kafka path's CPU (docs/benchmarks.md). The
batch spans are lean spans (:mod:`adapter.telemetry.lean_tracer`): the SDK's span
wraps every link's attributes in a bounded map, which made these spans a third of
the drainer's event-loop time.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import Final

from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
)

from adapter.telemetry.lean_tracer import LeanTracer

from .records import OutboundRecord

__all__ = ["MAX_LINKS", "SEMCONV", "BatchSpans", "ProducerTracing", "creation_context"]

#: OpenTelemetry messaging semantic-convention names, in one table because upstream keeps
#: renaming them; a deprecated spelling stays beside its replacement while consumers move.
SEMCONV: Final = {
    "system": "messaging.system",
    "destination": "messaging.destination.name",
    "operation_type": "messaging.operation.type",
    "operation_name": "messaging.operation.name",
    "operation_deprecated": "messaging.operation",  # -> messaging.operation.type
    "message_id": "messaging.message.id",
    "batch_count": "messaging.batch.message_count",
    "message_key": "messaging.kafka.message.key",
    "body_size": "messaging.message.body.size",
    "client_id": "messaging.client.id",
    "partition": "messaging.destination.partition.id",
    "partition_deprecated": "messaging.kafka.destination.partition",  # -> ...partition.id
    "offset": "messaging.kafka.offset",
    "offset_deprecated": "messaging.kafka.message.offset",  # -> messaging.kafka.offset
    "error_type": "error.type",
}
#: Records per ``send`` span: the SDK keeps 128 links per span by default.
MAX_LINKS: Final = 128
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_FLAGS: Final = {b"%02x" % flags: TraceFlags(flags) for flags in range(256)}
_ROOT = Context()


def creation_context(headers: Sequence[tuple[str, bytes]]) -> SpanContext | None:
    """The W3C ``traceparent`` of ``headers`` as a remote span context (None if absent
    or malformed). Parsed here, not by the propagator: this runs once per record."""
    for name, value in headers:
        if name == "traceparent":
            match = _TRACEPARENT.fullmatch(value)
            if match is None:
                return None
            version, trace_id, span_id, flags = match.groups()
            if version == b"ff":
                return None
            context = SpanContext(int(trace_id, 16), int(span_id, 16), True, _FLAGS[flags])
            return context if context.is_valid else None
    return None


class BatchSpans:
    """The ``send`` spans of one batch; :meth:`delivered` / :meth:`failed` per record
    (by its index in the batch), then :meth:`end`."""

    def __init__(self, spans: list[Span]) -> None:
        self._spans = spans
        self._delivered = [0] * len(spans)
        self._error: list[str | None] = [None] * len(spans)

    def delivered(self, indices: Sequence[int]) -> None:
        """Counts the records at ``indices`` (ascending) as acknowledged: a bisection
        per span, not a call per record."""
        at = 0
        for chunk in range(indices[0] // MAX_LINKS, indices[-1] // MAX_LINKS + 1) if indices else ():
            end = bisect.bisect_left(indices, (chunk + 1) * MAX_LINKS, at)
            self._delivered[chunk] += end - at
            at = end

    def failed(self, index: int, error: Exception) -> None:
        chunk = index // MAX_LINKS
        if self._error[chunk] is None:
            self._error[chunk] = type(error).__name__
            self._spans[chunk].set_status(Status(StatusCode.ERROR, str(error)))

    def failed_all(self, error: Exception) -> None:
        for chunk in range(len(self._spans)):
            self.failed(chunk * MAX_LINKS, error)

    def end(self) -> None:
        for span, delivered, error in zip(self._spans, self._delivered, self._error, strict=True):
            span.set_attribute("meshadapter.kafka.delivered_count", delivered)
            if error is not None:
                span.set_attribute(SEMCONV["error_type"], error)
            span.end()


class ProducerTracing:
    """``send`` spans over batches of records."""

    def __init__(self, tracer_provider: TracerProvider | None, *, client_id: str) -> None:
        self._tracer = LeanTracer(tracer_provider, __name__)
        self._client_id = client_id

    def start(self, records: Sequence[OutboundRecord]) -> BatchSpans:
        """Starts one span per :data:`MAX_LINKS` records of ``records`` (not made current:
        the records keep their own creation context)."""
        spans = []
        for first in range(0, len(records), MAX_LINKS):
            chunk = records[first : first + MAX_LINKS]
            topics = {record.topic for record in chunk}
            attributes: dict[str, str | int] = {
                SEMCONV["system"]: "kafka",
                SEMCONV["operation_type"]: "send",
                SEMCONV["operation_name"]: "send",
                SEMCONV["operation_deprecated"]: "publish",
                SEMCONV["client_id"]: self._client_id,
                SEMCONV["batch_count"]: len(chunk),
            }
            if len(topics) == 1:
                attributes[SEMCONV["destination"]] = chunk[0].topic
            links = []
            for record in chunk:
                context = record.creation
                if context is None:
                    context = creation_context(record.headers)
                if context is not None:
                    links.append(Link(context, {SEMCONV["message_id"]: record.ce_id}))
            spans.append(
                self._tracer.start_span(
                    f"send {chunk[0].topic}" if len(topics) == 1 else "send",
                    context=_ROOT,  # a root: the records' own traces are linked, not parents
                    kind=SpanKind.PRODUCER,
                    attributes=attributes,
                    links=links,
                )
            )
        return BatchSpans(spans)
