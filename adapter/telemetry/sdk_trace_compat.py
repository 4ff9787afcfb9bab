"""The one place that reads the tracing SDK's and API's private state (the metrics
side is :mod:`.sdk_metrics_compat`).

The SDK's ``Tracer`` keeps its ``SpanLimits`` private (``_span_limits``, set from
the provider's limits or the ``OTEL_SPAN_*_LIMIT`` variables) and has no public
accessor; the lean spans need the link count limit to stay equivalent to the
SDK's. The API's ``CompositePropagator`` keeps its propagators private; the
upstream trace headers (:mod:`.trace_headers`) need to know that the global one is
the W3C default. A lean span (:mod:`.lean_tracer`) is a ``ReadableSpan`` by the SDK's
private field names, and the OTLP encoder (:mod:`.otlp_wire`) reads a finished span's
fields without the SDK's property calls (~20 a span, a third of its encoding), and its
span contexts are built as that tuple (:func:`local_span_context`): all only when
:func:`readable_span_layout_known` says the fields are where this SDK keeps them.
``tests/telemetry/test_sdk_trace_compat.py`` fails if any of these changes.
"""

from __future__ import annotations

import sys

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

__all__ = ["local_span_context", "readable_span_layout_known", "span_link_limit", "w3c_default_parts"]

_MAX_TRACE_ID = 2**128 - 1
_MAX_SPAN_ID = 2**64 - 1
_new_tuple = tuple.__new__


def span_link_limit(tracer: SdkTracer) -> int:
    """How many links a span of ``tracer`` keeps (``sys.maxsize``: no limit)."""
    limits = getattr(tracer, "_span_limits", None)
    if not isinstance(limits, SpanLimits):
        raise TypeError(
            "opentelemetry-sdk's Tracer no longer keeps its SpanLimits in _span_limits: "
            "update adapter/telemetry/sdk_trace_compat.py"
        )
    return sys.maxsize if limits.max_links is None else limits.max_links


def w3c_default_parts(textmap: object) -> tuple[TraceContextTextMapPropagator, W3CBaggagePropagator] | None:
    """The two propagators of ``textmap`` when it is the API's default global one (a
    composite of W3C trace context then W3C baggage, ``OTEL_PROPAGATORS`` unset or
    ``tracecontext,baggage``), else None. The composite keeps its list private
    (``_propagators``); an API that renamed it makes this None (the adapter then
    injects through ``propagate.inject``), and the compat test fails."""
    if type(textmap) is not CompositePropagator:
        return None
    parts = getattr(textmap, "_propagators", None)
    if not isinstance(parts, list | tuple) or len(parts) != 2:
        return None
    trace_context, baggage = parts
    if type(trace_context) is TraceContextTextMapPropagator and type(baggage) is W3CBaggagePropagator:
        return trace_context, baggage
    return None


def local_span_context(
    trace_id: int, span_id: int, flags: TraceFlags, trace_state: TraceState | None
) -> SpanContext:
    """``SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags,
    trace_state=trace_state)``, built as the tuple its ``__new__`` builds, with the
    same validity check: that ``__new__`` is a Python call with keyword arguments,
    two a call. Only where :func:`readable_span_layout_known` is True."""
    valid = 0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID
    state = DEFAULT_TRACE_STATE if trace_state is None else trace_state
    context: SpanContext = _new_tuple(SpanContext, (trace_id, span_id, False, flags, state, valid))
    return context


def readable_span_layout_known() -> bool:
    """Whether a ``ReadableSpan`` keeps its fields in ``_name``, ``_context``,
    ``_parent``, ``_kind``, ``_start_time``, ``_end_time``, ``_attributes``, ``_events``,
    ``_links``, ``_status``; a ``SpanContext`` is the tuple ``(trace_id, span_id,
    is_remote, trace_flags, trace_state, is_valid)``; and a ``Status`` keeps
    ``_status_code`` and ``_description``: checked on one span built with a distinct
    value in every field. False (the encoder then reads the public properties) when
    any of it moved."""
    try:
        context = SpanContext(
            0x1234, 0x56, is_remote=False, trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v")])
        )
        parent = SpanContext(0x1234, 0x78, is_remote=True, trace_flags=TraceFlags(1))
        status = Status(StatusCode.ERROR, "layout probe")
        attributes = {"probe": 1}
        events: tuple[()] = ()
        links: tuple[()] = ()
        span = ReadableSpan(
            name="probe",
            context=context,
            parent=parent,
            resource=Resource.get_empty(),
            attributes=attributes,
            events=events,
            links=links,
            kind=SpanKind.CONSUMER,
            status=status,
            start_time=11,
            end_time=22,
            instrumentation_scope=InstrumentationScope("probe"),
        )
        given = (
            "probe", context, parent, SpanKind.CONSUMER, 11, 22, attributes, events, links, status,
        )  # fmt: skip
        fields = (
            span._name, span._context, span._parent, span._kind, span._start_time, span._end_time,
            span._attributes, span._events, span._links, span._status,
        )  # fmt: skip
        same_span = all(a is b for a, b in zip(fields, given, strict=True)) and span.attributes == attributes
        same_context = tuple(context) == (
            context.trace_id, context.span_id, context.is_remote, context.trace_flags, context.trace_state,
            context.is_valid,
        ) and tuple(parent)[2] is True  # fmt: skip
        same_status = status._status_code is status.status_code and status._description == status.description
        return bool(same_span and same_context and same_status)
    except (AttributeError, TypeError, ValueError):
        return False
