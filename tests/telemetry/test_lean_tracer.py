"""The lean per-call spans against the SDK's own: made with the same inputs, the
span processors must receive the same span (ids aside), the provider's sampler
must decide, and the official OTLP encoder and ours must agree on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    NoOpTracerProvider,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from adapter.telemetry.lean_tracer import LeanSpan, LeanTracer
from adapter.telemetry.otlp_wire import encode_trace_request

from .samplers import RecordOnly

REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "x1")]),
)
ATTRIBUTES = {"rpc.system": "grpc", "rpc.service": "openframe.v1.DeviceService", "rpc.method": "GetDevice"}


def recorded(**options: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "mesh-adapter"}), **options)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def comparable(span: ReadableSpan) -> dict[str, Any]:
    """Everything a processor or exporter reads, but the span's own ids and times."""
    return {
        "name": span.name,
        "kind": span.kind,
        "trace_flags": span.context.trace_flags,
        "trace_state": span.context.trace_state,
        "is_remote": span.context.is_remote,
        "parent": span.parent,
        "attributes": dict(span.attributes or {}),
        "status": (span.status.status_code, span.status.description),
        "events": [(e.name, dict(e.attributes or {})) for e in span.events],
        "links": [(link.context, dict(link.attributes or {})) for link in span.links],
        "resource": span.resource,
        "scope": span.instrumentation_scope,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "timed": None not in (span.start_time, span.end_time) and span.start_time <= span.end_time,  # type: ignore[operator]
    }


def both(work: Callable[[Any], None], **options: Any) -> tuple[ReadableSpan, ReadableSpan]:
    """``work(tracer)`` once with the SDK's tracer and once with the lean one."""
    finished = []
    for make in (lambda p: p.get_tracer("adapter.server"), lambda p: LeanTracer(p, "adapter.server")):
        provider, exporter = recorded(**options)
        work(make(provider))
        [span] = exporter.get_finished_spans()
        finished.append(span)
    return finished[0], finished[1]


def test_a_server_span_under_a_remote_parent_is_the_sdks() -> None:
    def work(tracer: Any) -> None:
        parent = trace.set_span_in_context(NonRecordingSpan(REMOTE))
        span = tracer.start_span("/openframe.v1.DeviceService/GetDevice", parent, SpanKind.SERVER, ATTRIBUTES)
        span.set_attribute("rpc.grpc.status_code", 14)
        span.set_status(Status(StatusCode.ERROR, "UNAVAILABLE: upstream down"))
        span.end()

    sdk, lean = both(work)
    assert comparable(lean) == comparable(sdk)
    assert lean.parent == REMOTE and lean.context.trace_id == REMOTE.trace_id
    assert lean.context.span_id != REMOTE.span_id


def test_a_client_span_is_a_child_of_the_current_span() -> None:
    provider, exporter = recorded()
    tracer = LeanTracer(provider, "adapter.upstream")
    server = tracer.start_span("server", kind=SpanKind.SERVER)
    token = context.attach(trace.set_span_in_context(server))
    try:
        client = tracer.start_span("GET /v1/devices/{device_id}", kind=SpanKind.CLIENT)
    finally:
        context.detach(token)
    client.end()
    server.end()
    finished_client, finished_server = exporter.get_finished_spans()
    assert finished_client.parent == server.get_span_context()
    assert finished_client.context.trace_id == finished_server.context.trace_id
    assert finished_server.parent is None


def test_events_exceptions_links_and_odd_values_are_the_sdks() -> None:
    error = ValueError("bad value")

    def work(tracer: Any) -> None:
        span = tracer.start_span("work", attributes={"ports": [1, 2], "thing": object.__new__(Status)})
        span.set_attributes({"names": ["a", "b"], "count": 3, "ratio": 0.5, "ok": True})
        span.add_event("retry", {"attempt": 2}, timestamp=123)
        span.add_link(REMOTE, {"why": "batch"})
        span.add_link(trace.INVALID_SPAN_CONTEXT)  # not valid, no attributes: dropped by both
        span.record_exception(error, {"extra": "x"}, timestamp=456)
        span.update_name("renamed")
        span.set_status(StatusCode.UNSET)  # ignored
        span.set_status(StatusCode.OK, "fine")
        span.set_status(StatusCode.ERROR, "too late: OK is final")
        span.end()
        span.set_attribute("after", "the end")  # ignored, as the SDK ignores it
        span.end()  # a second end exports nothing

    sdk, lean = both(work)
    assert comparable(lean) == comparable(sdk)
    assert lean.attributes is not None and lean.attributes["ports"] == (1, 2)
    assert lean.status.status_code is StatusCode.OK


def batch_links() -> list[Link]:
    """A Kafka ``send`` span's links, and the odd ones the SDK keeps or drops (fresh for
    each tracer: the SDK rewraps a link's attributes in place)."""
    state_only = SpanContext(0, 0, is_remote=False, trace_state=TraceState([("vendor", "x1")]))
    return [
        Link(REMOTE, {"messaging.message.id": "evt-1"}),
        Link(trace.INVALID_SPAN_CONTEXT),  # not valid, no attributes: dropped by both
        Link(trace.INVALID_SPAN_CONTEXT, {"why": "kept for its attributes"}),
        Link(state_only),  # kept for its trace state
    ]


def test_links_given_at_the_start_are_the_sdks() -> None:
    seen: list[int] = []

    class CountingLinks(Sampler):
        def should_sample(self, *args: Any, links: Any = None, **kwargs: Any) -> SamplingResult:
            seen.append(len(args[5] if len(args) > 5 else links or ()))
            return SamplingResult(Decision.RECORD_AND_SAMPLE)

        def get_description(self) -> str:
            return "counting links"

    def work(tracer: Any) -> None:
        span = tracer.start_span("send device.events", None, SpanKind.PRODUCER, {"n": 4}, batch_links())
        span.end()

    sdk, lean = both(work, sampler=CountingLinks())
    assert comparable(lean) == comparable(sdk)
    assert len(lean.links) == 3 and lean.links[0].attributes == {"messaging.message.id": "evt-1"}
    assert seen == [4, 4]  # the sampler saw the links, both ways


def test_more_links_than_the_provider_keeps_are_dropped_as_the_sdk_drops_them() -> None:
    def work(tracer: Any) -> None:
        tracer.start_span("send", links=batch_links()[:1] + [Link(REMOTE, {"i": i}) for i in range(3)]).end()

    sdk, lean = both(work, span_limits=SpanLimits(max_links=2))
    assert comparable(lean) == comparable(sdk)
    assert lean.dropped_links == 2
    assert [dict(link.attributes or {}) for link in lean.links] == [{"i": 1}, {"i": 2}]
    provider, _ = recorded(span_limits=SpanLimits(max_links=2))
    within = LeanTracer(provider, "adapter.events").start_span("send", links=batch_links()[:2])
    assert isinstance(within, LeanSpan)


def test_an_exception_leaving_the_span_is_recorded_as_the_sdk_records_it() -> None:
    def work(tracer: Any) -> None:
        with pytest.raises(KeyError), tracer.start_span("failing"):
            raise KeyError("device")

    sdk, lean = both(work)
    assert comparable(lean) == comparable(sdk)
    assert lean.status.status_code is StatusCode.ERROR
    assert lean.events[0].name == "exception"


def test_the_providers_sampler_decides() -> None:
    provider, exporter = recorded(sampler=ALWAYS_OFF)
    span = LeanTracer(provider, "adapter.server").start_span("dropped")
    assert not span.is_recording() and not isinstance(span, LeanSpan)
    assert span.get_span_context().is_valid and not span.get_span_context().trace_flags.sampled
    span.end()

    provider, exporter = recorded()  # parent-based: an unsampled caller is not recorded
    unsampled = SpanContext(REMOTE.trace_id, REMOTE.span_id, is_remote=True, trace_flags=TraceFlags(0))
    span = LeanTracer(provider, "adapter.server").start_span(
        "child", trace.set_span_in_context(NonRecordingSpan(unsampled))
    )
    span.end()
    assert not span.is_recording()
    assert span.get_span_context().trace_id == REMOTE.trace_id
    assert exporter.get_finished_spans() == ()


PARENTS = {
    "none": None,
    "remote, sampled, with a trace state": REMOTE,
    "remote, not sampled": SpanContext(REMOTE.trace_id, 0x1111, True, TraceFlags(0)),
    "local, sampled": SpanContext(REMOTE.trace_id, 0x2222, False, TraceFlags(1)),
    "local, not sampled": SpanContext(REMOTE.trace_id, 0x3333, False, TraceFlags(0)),
    "random trace id flag": SpanContext(REMOTE.trace_id, 0x4444, True, TraceFlags(3)),
    "invalid": SpanContext(0, 0, True, TraceFlags(1)),
}


@pytest.mark.parametrize("parent", PARENTS.values(), ids=PARENTS.keys())
def test_the_default_sampler_decided_inline_decides_as_the_sampler_itself(parent: SpanContext | None) -> None:
    """The SDK's default sampler (the ``DEFAULT_ON`` instance) is decided inline; a
    ``ParentBased(ALWAYS_ON)`` of its own goes through ``should_sample``: both must agree."""
    made = []
    for sampler in (DEFAULT_ON, ParentBased(ALWAYS_ON)):
        provider, exporter = recorded(sampler=sampler)
        tracer = LeanTracer(provider, "adapter.server")
        assert tracer._default_sampler is (sampler is DEFAULT_ON)
        context_ = None if parent is None else trace.set_span_in_context(NonRecordingSpan(parent))
        span = tracer.start_span("call", context_, SpanKind.SERVER, ATTRIBUTES)
        span.end()
        got = span.get_span_context()
        finished = exporter.get_finished_spans()
        made.append(
            (
                bool(finished),
                got.trace_flags,
                got.trace_state,
                got.trace_id if parent is not None and parent.is_valid else "new",
                [comparable(f) for f in finished],
            )
        )
    assert made[0] == made[1]


LEAN_PARENTS = {
    "under a remote parent with a trace state": (DEFAULT_ON, REMOTE),
    "under the random trace id flag": (DEFAULT_ON, PARENTS["random trace id flag"]),
    "a root": (DEFAULT_ON, None),
    "recorded, not sampled": (RecordOnly(), REMOTE),
}


@pytest.mark.parametrize(("sampler", "grandparent"), LEAN_PARENTS.values(), ids=LEAN_PARENTS.keys())
def test_a_child_of_a_lean_span_is_the_sdks_child_of_it(
    sampler: Sampler, grandparent: SpanContext | None
) -> None:
    """A span started while a lean span is current (the upstream request of a call)
    reads its parent's ids from the lean span's attributes: the same child as the
    SDK's tracer makes under it, dropped where the SDK drops it."""
    parent_provider, _ = recorded(sampler=sampler)
    outer = None if grandparent is None else trace.set_span_in_context(NonRecordingSpan(grandparent))
    parent = LeanTracer(parent_provider, "adapter.server").start_span(
        "call", outer, SpanKind.SERVER, ATTRIBUTES
    )
    assert type(parent) is LeanSpan
    made = []
    for make in (lambda p: p.get_tracer("adapter.upstream"), lambda p: LeanTracer(p, "adapter.upstream")):
        provider, exporter = recorded()
        token = context.attach(trace.set_span_in_context(parent))
        try:
            child = make(provider).start_span(
                "GET /v1/devices/{device_id}", kind=SpanKind.CLIENT, attributes={"a": 1}
            )
        finally:
            context.detach(token)
        child.end()
        got = child.get_span_context()
        finished = exporter.get_finished_spans()
        made.append((got.trace_id, got.trace_flags, got.trace_state, [comparable(f) for f in finished]))
    assert made[0] == made[1]
    assert made[0][0] == parent.get_span_context().trace_id


def test_span_processors_see_the_start_and_may_add_attributes() -> None:
    class Stamping(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            span.set_attribute("tenant", "acme")

    provider, exporter = recorded()
    provider.add_span_processor(Stamping())
    span = LeanTracer(provider, "adapter.server").start_span("stamped")
    span.end()
    [finished] = exporter.get_finished_spans()
    assert finished.attributes == {"tenant": "acme"}


@pytest.mark.parametrize("disabled", [True, False])
def test_without_an_sdk_provider_the_providers_own_tracer_makes_the_span(
    monkeypatch: pytest.MonkeyPatch, disabled: bool
) -> None:
    if disabled:
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        provider: Any = TracerProvider()
    else:
        provider = NoOpTracerProvider()
    span = LeanTracer(provider, "adapter.server").start_span("nothing", kind=SpanKind.SERVER)
    assert not span.is_recording() and not isinstance(span, LeanSpan)


def test_the_sdks_internal_span_metrics_keep_the_sdks_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    provider, exporter = recorded()
    span = LeanTracer(provider, "adapter.server").start_span("counted")
    assert span.is_recording() and not isinstance(span, LeanSpan)
    span.end()
    assert len(exporter.get_finished_spans()) == 1


def test_both_encoders_agree_on_a_lean_span() -> None:
    provider, exporter = recorded()
    tracer = LeanTracer(provider, "adapter.server")
    span = tracer.start_span(
        "/openframe.v1.DeviceService/GetDevice",
        trace.set_span_in_context(NonRecordingSpan(REMOTE)),
        SpanKind.SERVER,
        ATTRIBUTES,
        batch_links(),
    )
    span.add_event("retry", {"attempt": 2})
    span.set_status(Status(StatusCode.ERROR, "INTERNAL: x"))
    span.end()
    spans = exporter.get_finished_spans()
    assert ExportTraceServiceRequest.FromString(encode_trace_request(spans)) == encode_spans(spans)


def test_a_current_span_for_a_block_is_the_sdks() -> None:
    def work(tracer: Any) -> None:
        attributes = {"messaging.system": "websocket", "messaging.operation.type": "receive"}
        with (
            pytest.raises(KeyError),
            tracer.start_as_current_span(
                "receive openframe alert", kind=SpanKind.CONSUMER, attributes=attributes
            ) as span,
        ):
            assert trace.get_current_span() is span
            span.set_attribute("meshadapter.dead_letter.reason", "UNROUTABLE")
            raise KeyError("route")
        assert trace.get_current_span() is not span

    sdk, lean = both(work)
    # The stack traces differ in the tracers' own frames only: compare their ends.
    seen = [comparable(span) for span in (sdk, lean)]
    ends = [str(c["events"][0][1].pop("exception.stacktrace")).splitlines()[-3:] for c in seen]
    assert ends[0] == ends[1] and ends[0][-1] == "KeyError: 'route'"
    assert seen[1] == seen[0]
    assert lean.status.status_code is StatusCode.ERROR and lean.events[0].name == "exception"


@pytest.mark.parametrize("parent", PARENTS.values(), ids=PARENTS.keys())
def test_a_lean_span_repeats_its_contexts_ids_as_plain_attributes(parent: SpanContext | None) -> None:
    provider, _ = recorded()
    context_ = None if parent is None else trace.set_span_in_context(NonRecordingSpan(parent))
    span = LeanTracer(provider, "adapter.server").start_span("call", context_)
    if not isinstance(span, LeanSpan):  # an unsampled parent: not recorded, no lean span
        assert parent is not None and not parent.trace_flags.sampled
        return
    got = span.get_span_context()
    assert (span.trace_id, span.span_id, span.trace_flags) == (got.trace_id, got.span_id, got.trace_flags)
    assert span.trace_state == (parent.trace_state if parent is not None and parent.is_valid else None)
    assert span.trace_id != 0 and span.span_id != 0


def test_ids_come_from_the_providers_id_generator_unless_it_is_the_sdks_random_one() -> None:
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

    class Counting(IdGenerator):
        def generate_span_id(self) -> int:
            return 0x1234

        def generate_trace_id(self) -> int:
            return 0xABCD

    provider, _ = recorded(id_generator=Counting())
    tracer = LeanTracer(provider, "adapter.server")
    assert not tracer._random_ids
    span = tracer.start_span("call")
    assert (span.get_span_context().trace_id, span.get_span_context().span_id) == (0xABCD, 0x1234)
    assert not span.get_span_context().trace_flags.random_trace_id  # (the base class says not random)

    provider, _ = recorded()
    tracer = LeanTracer(provider, "adapter.server")
    assert tracer._random_ids and type(provider.id_generator) is RandomIdGenerator
    spans = [tracer.start_span("call").get_span_context() for _ in range(50)]
    assert len({s.trace_id for s in spans}) == 50 and len({s.span_id for s in spans}) == 50
    assert all(s.trace_flags.random_trace_id and s.trace_id < 2**128 and s.span_id < 2**64 for s in spans)
