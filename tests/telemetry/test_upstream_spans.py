"""Upstream CLIENT spans and ``http.client.request.duration``: an answered request
(recorded after the reply) and one that got no answer (recorded at once) carry the
same attributes, and each duration's exemplar is the request's own span."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from adapter.telemetry.upstream_spans import HTTP_CLIENT_DURATION, UpstreamSpans

ROUTE = "GET /v1/devices/{device_id}"
URL = "http://127.0.0.1:8080/v1/devices/dev_001"


def _points(reader: InMemoryMetricReader) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == HTTP_CLIENT_DURATION
        for p in m.data.data_points
    ]


async def test_answered_and_failed_requests_point_their_exemplar_at_their_own_span(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    reader = InMemoryMetricReader()
    spans = UpstreamSpans(
        tracer_provider,
        origin=urlsplit("http://127.0.0.1:8080"),
        upstream="openframe",
        meter_provider=MeterProvider([reader]),
    )
    # As in a call: the RPC's server span is current while the upstream requests run.
    server = trace.get_tracer("test", tracer_provider=tracer_provider).start_span("rpc", kind=SpanKind.SERVER)
    token = context.attach(trace.set_span_in_context(server))
    try:
        for status in (200, 503):
            spans.answered(spans.start("GET", URL, ROUTE, []), status)
        spans.failed(spans.start("GET", URL, ROUTE, []), ConnectionResetError("peer went away"))
    finally:
        context.detach(token)
    await asyncio.sleep(0)  # the answered ones are recorded after the reply

    clients = {s.context.span_id: s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.CLIENT}
    assert len(clients) == 3
    by_error = {}
    for point in _points(reader):
        [exemplar] = point.exemplars
        span = clients[exemplar.span_id]  # the request's span, not the RPC's
        assert span.parent is not None and span.parent.span_id == server.context.span_id
        by_error[point.attributes.get("error.type")] = (dict(point.attributes), span)

    ok_attributes, ok_span = by_error[None]
    assert ok_attributes["http.response.status_code"] == 200
    assert ok_span.attributes["http.response.status_code"] == 200
    assert ok_span.status.status_code == StatusCode.UNSET

    answered_attributes, answered_span = by_error["503"]
    assert answered_attributes["http.response.status_code"] == 503
    assert answered_span.attributes["error.type"] == "503"
    assert answered_span.status.status_code == StatusCode.ERROR

    failed_attributes, failed_span = by_error["ConnectionResetError"]
    assert "http.response.status_code" not in failed_attributes
    assert failed_span.attributes["error.type"] == "ConnectionResetError"
    assert failed_span.status.status_code == StatusCode.ERROR
    assert failed_span.status.description == "peer went away"
    for attributes, _ in by_error.values():
        assert attributes["url.template"] == "/v1/devices/{device_id}"
        assert attributes["meshadapter.upstream"] == "openframe"
