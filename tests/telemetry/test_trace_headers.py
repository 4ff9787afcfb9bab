"""An upstream request's trace headers, written from a lean span's ids, are the
headers ``propagate.inject`` writes: with and without a trace state and baggage,
and through whatever propagator is global when it is not the W3C default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from adapter.telemetry.lean_tracer import LeanSpan, LeanTracer
from adapter.telemetry.trace_headers import TraceHeaders

REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(3),
    trace_state=TraceState([("vendor", "x1"), ("other", "y")]),
)


def injected(span: Span) -> list[tuple[str, str]]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return list(carrier.items())


def appended(headers: TraceHeaders, span: Span) -> list[tuple[str, str]]:
    out = [("Accept", "application/json")]
    headers.append(span, out)
    assert out[0] == ("Accept", "application/json")
    return out[1:]


@pytest.fixture
def with_baggage() -> Iterator[None]:
    token = context.attach(baggage.set_baggage("tenant", "acme corp", baggage.set_baggage("region", "eu")))
    yield
    context.detach(token)


PARENTS = {
    "no parent": None,
    "a remote parent with a trace state": REMOTE,
    "a parent with an empty trace state": SpanContext(REMOTE.trace_id, 0x42, True, TraceFlags(1)),
}


@pytest.mark.parametrize("parent", PARENTS.values(), ids=PARENTS.keys())
@pytest.mark.parametrize("baggage_", [False, True], ids=["without baggage", "with baggage"])
def test_a_lean_spans_headers_are_the_propagators(
    parent: SpanContext | None, baggage_: bool, request: pytest.FixtureRequest
) -> None:
    if baggage_:
        request.getfixturevalue("with_baggage")
    parent_context = None if parent is None else trace.set_span_in_context(NonRecordingSpan(parent))
    span = LeanTracer(TracerProvider(), "adapter.upstream").start_span("GET /v1/x", parent_context)
    assert isinstance(span, LeanSpan)
    headers = TraceHeaders()
    got = appended(headers, span)
    assert headers._baggage is not None  # the lean path was taken
    assert got == injected(span)
    names = [name for name, _ in got]
    assert names[0] == "traceparent"
    assert ("tracestate" in names) is (parent is REMOTE)
    assert ("baggage" in names) is baggage_


def test_another_span_goes_through_the_propagator() -> None:
    span = NonRecordingSpan(REMOTE)
    assert appended(TraceHeaders(), span) == injected(span) != []


def test_a_global_propagator_other_than_the_default_is_used_as_it_is(with_baggage: None) -> None:
    span = LeanTracer(TracerProvider(), "adapter.upstream").start_span("GET /v1/x")
    headers = TraceHeaders()
    assert [name for name, _ in appended(headers, span)] == ["traceparent", "baggage"]
    default = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    try:
        got = appended(headers, span)  # the same TraceHeaders sees the change
        assert headers._baggage is None
        assert got == injected(span) and [name for name, _ in got] == ["traceparent"]
    finally:
        propagate.set_global_textmap(default)
    assert [name for name, _ in appended(headers, span)] == ["traceparent", "baggage"]
