"""The trace headers an upstream request carries: W3C ``traceparent`` and
``tracestate`` from its span, ``baggage`` from the current context.

``propagate.inject`` writes them through the global propagator: ~2.4 µs a request
in a tight loop, fourteen Python calls (a context to hold the span, three context
lookups, seven property reads, two propagators). When the global propagator is
the API's default (W3C trace context, then W3C baggage: ``OTEL_PROPAGATORS``
unset or ``tracecontext,baggage``) and the span is a lean span, its ids are at
hand, and this writes the same headers in ~0.9 µs; baggage, when the context
holds some, still goes through the default's own baggage propagator (its limits
and encoding). Any other propagator or span goes through ``propagate.inject``.
``tests/telemetry/test_trace_headers.py`` checks the headers are the same.
"""

from __future__ import annotations

from opentelemetry import baggage, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace import Span

from .lean_tracer import LeanSpan
from .sdk_trace_compat import w3c_default_parts

__all__ = ["TraceHeaders"]


class TraceHeaders:
    """Appends a span's trace headers to a request's (``append``)."""

    def __init__(self) -> None:
        self._textmap: object = None
        self._baggage: W3CBaggagePropagator | None = None  # set: the global one is the default

    def append(self, span: Span, headers: list[tuple[str, str]]) -> None:
        """Appends ``span``'s trace headers (as ``propagate.inject`` writes them) to ``headers``."""
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:  # set_global_textmap may replace it at any time
            parts = w3c_default_parts(textmap)
            self._textmap, self._baggage = textmap, parts[1] if parts is not None else None
        propagator = self._baggage
        if propagator is None or type(span) is not LeanSpan:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            headers.extend(carrier.items())
            return
        headers.append(("traceparent", f"00-{span.trace_id:032x}-{span.span_id:016x}-{span.trace_flags:02x}"))
        state = span.trace_state
        if state:
            headers.append(("tracestate", state.to_header()))
        if baggage.get_all():
            carrier = {}
            propagator.inject(carrier)
            headers.extend(carrier.items())
