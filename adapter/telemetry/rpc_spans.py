"""A SERVER span per upstream-backed RPC, made by the handler itself (a lean span,
:mod:`.lean_tracer`, which the SDK's sampler and processors decide and ship).

The opentelemetry-instrumentation-grpc interceptor costs ~120 µs per call on
grpc.aio (peer bench: a wrapped handler per call, a proxied servicer context,
peer-address parsing); these spans cost a fraction of that. The interceptor
still traces every other service (health, reflection, events): it is told to
skip the services that trace themselves (:func:`skip_self_traced`).

The span carries the same name (``/package.Service/Method``) and attribute names
as the interceptor's, continues the caller's W3C ``traceparent``, and is current
while the handler runs, so the upstream client's spans are its children. Its
duration also goes to the ``rpc.server.duration`` histogram (OpenTelemetry's RPC
metric conventions: milliseconds, by service, method and status code), which is
what "RPCs by method and code" is read from; it is a lean histogram
(:mod:`.lean_metrics`), each status code's series bound once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from contextvars import Token
from typing import Any, NamedTuple

import grpc
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from .after_reply import after_reply
from .lean_metrics import HistogramRecorder, histogram_recorder
from .lean_tracer import LeanTracer

__all__ = ["RPC_SERVER_DURATION", "RpcCall", "RpcSpans", "rpc_duration_histogram", "skip_self_traced"]

RPC_SERVER_DURATION = "rpc.server.duration"
_RPC_DURATION_DESCRIPTION = "Duration of inbound RPCs"

RPC_SYSTEM = "rpc.system"
RPC_SERVICE = "rpc.service"
RPC_METHOD = "rpc.method"
RPC_STATUS = "rpc.grpc.status_code"
# The metadata keys the default propagators (W3C trace context, baggage) read.
_PROPAGATED = frozenset({"traceparent", "tracestate", "baggage"})
# Server spans are errors only for these codes (OpenTelemetry's gRPC conventions):
# the others describe the caller's request, not a fault of the server.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def rpc_duration_histogram(meter_provider: MeterProvider | None) -> HistogramRecorder:
    """``rpc.server.duration`` (ms); the same instrument for every caller."""
    return histogram_recorder(
        meter_provider,
        "adapter.server",
        RPC_SERVER_DURATION,
        unit="ms",
        description="Duration of inbound RPCs",
    )


class RpcCall(NamedTuple):
    """One call in flight: its span, the context token, and when it started."""

    span: Span
    token: Token[Context]
    started: float  # perf_counter seconds


def skip_self_traced(services: Collection[str]) -> Callable[[Any], bool]:
    """A filter for the gRPC interceptor: True (trace) except for ``services``."""
    skipped = frozenset(services)

    def traced_by_interceptor(details: Any) -> bool:
        method: str = details.method or ""
        return method[1:].split("/", 1)[0] not in skipped

    return traced_by_interceptor


class RpcSpans:
    """The spans of one RPC method's calls."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None,
        method_path: str,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._tracer = LeanTracer(tracer_provider, "adapter.server")
        self._name = method_path
        service, _, method = method_path.lstrip("/").partition("/")
        self._attributes = {RPC_SYSTEM: "grpc", RPC_SERVICE: service, RPC_METHOD: method}
        self._duration = rpc_duration_histogram(meter_provider)
        # Per status code, built once: its histogram series (one attribute set), its
        # number and whether it is a server error. The hot path makes one lookup (an
        # Enum's hash is a Python call, and so is its ``value``).
        self._by_code = {
            code: (
                self._duration.series({**self._attributes, RPC_STATUS: code.value[0]}),
                code.value[0],
                code in _SERVER_ERRORS,
            )
            for code in grpc.StatusCode
        }

    def start(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> RpcCall:
        """Starts the call's span as a child of the caller's trace (if it sent one) and
        makes it current; returns it with the token :meth:`end` needs."""
        carrier: dict[str, str] = {}
        for key, value in metadata or ():  # (a loop: a comprehension is a call of its own)
            if (key == "traceparent" or key == "tracestate") and type(value) is str:
                carrier[key] = value
        parent = propagate.extract(carrier) if carrier else None
        span = self._tracer.start_span(
            self._name, context=parent, kind=SpanKind.SERVER, attributes=self._attributes
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        return RpcCall(span, token, time.perf_counter())

    def end(self, call: RpcCall, code: grpc.StatusCode = grpc.StatusCode.OK, message: str = "") -> None:
        """Takes the call's end time and duration now and records them after the reply
        (:mod:`.after_reply`); the span stops being current at once."""
        duration_ms = (time.perf_counter() - call.started) * 1000.0
        context.detach(call.token)
        after_reply(self._record, call.span, code, message, duration_ms, time.time_ns())

    def _record(
        self, span: Span, code: grpc.StatusCode, message: str, duration_ms: float, end_time: int
    ) -> None:
        series, number, server_error = self._by_code[code]
        # The span, so the trace-based exemplar points at this call.
        series.record(duration_ms, span, end_time)
        span.set_attribute(RPC_STATUS, number)
        if server_error:
            span.set_status(Status(StatusCode.ERROR, f"{code.name}: {message}"))
        span.end(end_time=end_time)
