"""PRODUCER spans for Kafka sends (OpenTelemetry messaging conventions).

The record's ``traceparent`` header, set by the source on receipt, is the parent of
the span; the span's own context replaces that header on the record sent, so a
consumer that extracts it continues the same trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Final

from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .records import OutboundRecord

__all__ = ["SEMCONV", "ProducerTracing"]

#: OpenTelemetry messaging semantic-convention names, in one table because upstream keeps
#: renaming them; a deprecated spelling stays beside its replacement while consumers move.
SEMCONV: Final = {
    "system": "messaging.system",
    "destination": "messaging.destination.name",
    "operation_type": "messaging.operation.type",
    "operation_name": "messaging.operation.name",
    "operation_deprecated": "messaging.operation",  # -> messaging.operation.type
    "message_id": "messaging.message.id",
    "message_key": "messaging.kafka.message.key",
    "body_size": "messaging.message.body.size",
    "client_id": "messaging.client.id",
    "partition": "messaging.destination.partition.id",
    "partition_deprecated": "messaging.kafka.destination.partition",  # -> ...partition.id
    "offset": "messaging.kafka.offset",
    "offset_deprecated": "messaging.kafka.message.offset",  # -> messaging.kafka.offset
    "error_type": "error.type",
}
_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})


class _HeaderGetter(Getter[Sequence[tuple[str, bytes]]]):
    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        values = [value.decode("latin-1") for name, value in carrier if name.lower() == key]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [name for name, _ in carrier]


_GETTER = _HeaderGetter()


class ProducerTracing:
    """One PRODUCER span per send, parented by the record's ``traceparent``."""

    def __init__(self, tracer_provider: TracerProvider | None, *, client_id: str) -> None:
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        # W3C trace context explicitly, not the global propagator: the header is the contract.
        self._propagator = TraceContextTextMapPropagator()
        self._client_id = client_id

    def start(self, record: OutboundRecord) -> tuple[Span, list[tuple[str, bytes]]]:
        """The span, and the record's headers with its ``traceparent`` in place of the source's."""
        attributes: dict[str, str | int] = {
            SEMCONV["system"]: "kafka",
            SEMCONV["destination"]: record.topic,
            SEMCONV["operation_type"]: "send",
            SEMCONV["operation_name"]: "send",
            SEMCONV["operation_deprecated"]: "publish",
            SEMCONV["message_id"]: record.ce_id,
            SEMCONV["body_size"]: len(record.value),
            SEMCONV["client_id"]: self._client_id,
        }
        if record.key is not None:
            with contextlib.suppress(UnicodeDecodeError):  # no canonical string form: left out
                attributes[SEMCONV["message_key"]] = record.key.decode()
        span = self._tracer.start_span(
            f"send {record.topic}",
            context=self._propagator.extract(record.headers, getter=_GETTER),
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        )
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        headers = [(name, value) for name, value in record.headers if name.lower() not in _TRACE_HEADERS]
        headers += [(name, value.encode()) for name, value in carrier.items()]
        return span, headers

    @staticmethod
    def delivered(span: Span, partition: int, offset: int) -> None:
        span.set_attribute(SEMCONV["partition"], str(partition))
        span.set_attribute(SEMCONV["partition_deprecated"], partition)
        span.set_attribute(SEMCONV["offset"], offset)
        span.set_attribute(SEMCONV["offset_deprecated"], offset)
        span.end()

    @staticmethod
    def failed(span: Span, error: Exception) -> None:
        span.set_attribute(SEMCONV["error_type"], type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()
