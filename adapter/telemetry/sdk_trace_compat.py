"""The one place that reads the tracing SDK's and API's private state (the metrics
side is :mod:`.sdk_metrics_compat`).

The SDK's ``Tracer`` keeps its ``SpanLimits`` private (``_span_limits``, set from
the provider's limits or the ``OTEL_SPAN_*_LIMIT`` variables) and has no public
accessor; the lean spans need the link count limit to stay equivalent to the
SDK's. The API's ``CompositePropagator`` keeps its propagators private; the
upstream trace headers (:mod:`.trace_headers`) need to know that the global one is
the W3C default. ``tests/telemetry/test_sdk_trace_compat.py`` fails if either changes.
"""

from __future__ import annotations

import sys

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["span_link_limit", "w3c_default_parts"]


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
