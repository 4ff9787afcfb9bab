"""The hand-written OTLP encoder against the official one: the bytes must parse to
exactly the ``ExportTraceServiceRequest`` opentelemetry-exporter-otlp builds, for
every kind of span field and attribute value; and the exporter must deliver them
to a real OTLP/gRPC endpoint."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from adapter.telemetry.otlp_exporter import WireOTLPSpanExporter
from adapter.telemetry.otlp_wire import encode_trace_request

from .otlp_collector import Collector


def recorded(resource: Resource | None = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource or Resource.create({"service.name": "mesh-adapter"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def plain(span: ReadableSpan) -> ReadableSpan:
    """``span`` as the lean spans hand theirs over: a ``ReadableSpan`` itself, attributes
    in a dict, events and links in tuples (the encoder reads such a span's fields
    directly, without its properties)."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=dict(span.attributes or {}),
        events=tuple(span.events),
        links=tuple(span.links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def assert_same_request(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> None:
    """Both ways the encoder reads a span: the SDK's own spans through their properties,
    and the same spans as plain ``ReadableSpan`` objects, read directly."""
    for batch in (list(spans), [plain(span) for span in spans]):
        ours = ExportTraceServiceRequest.FromString(encode_trace_request(batch))
        assert ours == encode_spans(batch)


REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "x1"), ("other", "y")]),
)


def test_the_adapters_spans_encode_as_the_official_encoder_does() -> None:
    provider, exporter = recorded()
    tracer = provider.get_tracer(
        "adapter.server", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.26.0"
    )
    other = provider.get_tracer("adapter.events")
    from opentelemetry import trace

    parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    with tracer.start_as_current_span(
        "/openframe.v1.DeviceService/GetDevice",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.method": "GetDevice", "rpc.grpc.status_code": 0},
    ) as server:
        server.add_event("retry", {"attempt": 2, "delay_s": 0.25, "ok": False})
        server.add_event("")
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT) as client:
            client.set_attributes(
                {
                    "url.full": "http://127.0.0.1:8080/v1/devices/dev_001",
                    "server.port": 8080,
                    "http.response.status_code": 503,
                    "negative": -7,
                    "big": 2**62,
                    "ratio": -1.5e-300,
                    "empty": "",
                    "flags": (True, False),
                    "ports": (1, 2, 3),
                    "names": ("a", "", "é"),
                    "weights": (0.5, 1.0),
                }
            )
            client.set_status(Status(StatusCode.ERROR, "UNAVAILABLE: upstream down"))
    with other.start_as_current_span(
        "send meshadapter.openframe.alerts",
        kind=SpanKind.PRODUCER,
        links=[Link(REMOTE, {"messaging.message.id": "e-1"}), Link(REMOTE)],
    ) as producer:
        producer.set_status(Status(StatusCode.OK))
    with other.start_as_current_span("internal", kind=SpanKind.INTERNAL):
        pass
    with other.start_as_current_span("consumer", kind=SpanKind.CONSUMER):
        pass
    spans = exporter.get_finished_spans()
    assert len(spans) == 5
    assert_same_request(spans)
    # Spans of two resources (two providers) in one batch: grouped like the official encoder.
    second, second_exporter = recorded(Resource.create({"service.name": "other"}, schema_url="https://s/1"))
    with second.get_tracer("x").start_as_current_span("y"):
        pass
    assert_same_request([*spans, *second_exporter.get_finished_spans(), spans[0]])


def test_dropped_attributes_events_and_links_are_counted() -> None:
    from opentelemetry.sdk.trace import SpanLimits

    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        span_limits=SpanLimits(max_span_attributes=2, max_events=1, max_links=1, max_event_attributes=1)
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span(
        "limited", attributes={"a": 1, "b": 2, "c": 3}, links=[Link(REMOTE), Link(REMOTE)]
    ) as span:
        span.add_event("e1", {"x": 1, "y": 2})
        span.add_event("e2")
    (finished,) = exporter.get_finished_spans()
    assert finished.dropped_attributes and finished.dropped_events and finished.dropped_links
    assert_same_request([finished])


def test_no_spans_is_an_empty_request() -> None:
    assert encode_trace_request([]) == b""
    assert_same_request([])


scalars = st.one_of(
    st.text(max_size=80),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)
values = st.one_of(
    scalars,
    st.lists(st.text(max_size=10), max_size=4).map(tuple),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=4).map(tuple),
    st.lists(st.booleans(), max_size=4).map(tuple),
    st.lists(st.floats(allow_nan=False), max_size=4).map(tuple),
)


@settings(max_examples=150, deadline=None, derandomize=True)  # a merge gate replays the same inputs
@given(
    attributes=st.dictionaries(st.text(min_size=1, max_size=20), values, max_size=12),
    name=st.text(max_size=40),
    kind=st.sampled_from(list(SpanKind)),
)
def test_generated_attributes_encode_as_the_official_encoder_does(
    attributes: dict[str, Any], name: str, kind: SpanKind
) -> None:
    provider, exporter = recorded()
    with provider.get_tracer("fuzz").start_as_current_span(name, kind=kind, attributes=attributes) as span:
        span.add_event("event", attributes)
    # Twice: the second time the attribute cache answers.
    with provider.get_tracer("fuzz").start_as_current_span(name, kind=kind, attributes=attributes):
        pass
    assert_same_request(exporter.get_finished_spans())


def test_the_exporter_delivers_the_same_request_to_an_otlp_endpoint(collector: tuple[Collector, int]) -> None:
    servicer, port = collector
    provider, memory = recorded()
    with (
        provider.get_tracer("adapter.server").start_as_current_span("call", attributes={"rpc.method": "Get"}),
        provider.get_tracer("adapter.upstream").start_as_current_span("GET", kind=SpanKind.CLIENT),
    ):
        pass
    spans = memory.get_finished_spans()
    exporter = WireOTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=5)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert servicer.received.wait(5)
    finally:
        exporter.shutdown()
    assert servicer.requests == [encode_spans(spans)]
