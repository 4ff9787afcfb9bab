"""The OTLP/gRPC span exporter, with the request written by :mod:`adapter.telemetry.otlp_wire`.

Everything else is opentelemetry-exporter-otlp-proto-grpc's ``OTLPSpanExporter``:
endpoint, TLS, headers, compression and timeout from ``OTEL_EXPORTER_OTLP_*``, its
retries and reconnection. Only the request changes: bytes instead of a protobuf
object, sent by a stub that passes them through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan

from .export_pauses import ExportPauses
from .otlp_wire import encode_trace_request

__all__ = ["WireOTLPSpanExporter"]

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class _PreEncodedTraceServiceStub:
    """``TraceServiceStub`` for a request that is already serialized."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(
            _EXPORT,
            request_serializer=bytes,  # (bytes of bytes is the same object)
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class WireOTLPSpanExporter(OTLPSpanExporter):
    """``OTLPSpanExporter`` encoding ~3x faster (the same message, checked by
    tests/telemetry/test_otlp_wire.py), pausing now and then while it encodes
    (``pauses``; see :mod:`adapter.telemetry.export_pauses`). Takes ``OTLPSpanExporter``'s
    arguments besides ``pauses``."""

    def __init__(self, *, pauses: ExportPauses | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pauses = pauses
        # The mixin builds its client from ``_stub`` now and again on every reconnect.
        self._stub = _PreEncodedTraceServiceStub
        self._client = self._stub(self._channel)

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        if self._pauses is not None:
            self._pauses.start()
        return encode_trace_request(data, pauses=self._pauses)
