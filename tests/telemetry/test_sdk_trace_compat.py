"""The tracing SDK's private state the lean spans read: fails when the SDK changes it."""

from __future__ import annotations

import sys

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from adapter.telemetry.sdk_trace_compat import local_span_context, span_link_limit


def sdk_tracer(provider: TracerProvider) -> SdkTracer:
    tracer = provider.get_tracer("adapter.test")
    assert isinstance(tracer, SdkTracer)
    return tracer


def test_the_link_limit_is_the_providers() -> None:
    assert span_link_limit(sdk_tracer(TracerProvider())) == 128  # the SDK's default
    assert span_link_limit(sdk_tracer(TracerProvider(span_limits=SpanLimits(max_links=7)))) == 7
    unlimited = TracerProvider(span_limits=SpanLimits(max_links=SpanLimits.UNSET))
    assert span_link_limit(sdk_tracer(unlimited)) == sys.maxsize


def test_the_link_limit_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "3")
    assert span_link_limit(sdk_tracer(TracerProvider())) == 3


def test_the_apis_default_global_propagator_is_recognised() -> None:
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from adapter.telemetry.sdk_trace_compat import w3c_default_parts

    # OTEL_PROPAGATORS is unset in the suite: the global one is the API's default.
    parts = w3c_default_parts(propagate.get_global_textmap())
    assert parts is not None
    assert (type(parts[0]), type(parts[1])) == (TraceContextTextMapPropagator, W3CBaggagePropagator)
    assert w3c_default_parts(CompositePropagator([TraceContextTextMapPropagator()])) is None
    reversed_ = CompositePropagator([W3CBaggagePropagator(), TraceContextTextMapPropagator()])
    assert w3c_default_parts(reversed_) is None
    assert w3c_default_parts(TraceContextTextMapPropagator()) is None


def test_a_readable_spans_fields_are_where_the_encoder_reads_them() -> None:
    """The OTLP encoder reads plain spans' private fields only while this holds; when an
    SDK moves them it falls back to the properties (slower, same bytes) and this fails."""
    from adapter.telemetry import otlp_wire
    from adapter.telemetry.sdk_trace_compat import readable_span_layout_known

    assert readable_span_layout_known()
    assert otlp_wire._DIRECT


def test_a_moved_field_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.trace import Status

    from adapter.telemetry.sdk_trace_compat import readable_span_layout_known

    monkeypatch.delattr(Status, "description")  # a layout the probe cannot confirm
    assert not readable_span_layout_known()


@pytest.mark.parametrize(
    ("trace_id", "span_id"),
    [
        (0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7),  # the W3C example's ids
        (1, 1),
        (2**128 - 1, 2**64 - 1),  # the largest valid ids
        (0, 0x00F067AA0BA902B7),  # invalid: a zero trace id
        (0x0AF7651916CD43DD8448EB211C80319C, 0),  # invalid: a zero span id
        (2**128, 1),  # invalid: out of range
        (1, 2**64),
    ],
)
@pytest.mark.parametrize("flags", [0, 1, 2, 3])
@pytest.mark.parametrize("state", [None, TraceState([("vendor", "v1")])])
def test_a_local_span_context_is_the_one_the_api_builds(
    trace_id: int, span_id: int, flags: int, state: TraceState | None
) -> None:
    flags_ = TraceFlags(flags)
    expected = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags_, trace_state=state)
    built = local_span_context(trace_id, span_id, flags_, state)
    assert type(built) is SpanContext
    assert tuple(built) == tuple(expected)
    assert (built.trace_id, built.span_id, built.is_remote, built.is_valid) == (
        expected.trace_id, expected.span_id, False, expected.is_valid,
    )  # fmt: skip
    assert built.trace_flags == flags and built.trace_flags.sampled == bool(flags & 1)
    assert built.trace_state == (state if state is not None else TraceState())
