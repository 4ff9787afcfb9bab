"""A CLIENT span per upstream HTTP request, a lean span (:mod:`.lean_tracer`).

The span's context travels to the upstream as W3C ``traceparent`` (the global
propagator). Attribute names follow the stable HTTP semantic conventions and
live here only. The peer bench measured opentelemetry-instrumentation-httpx's
wrapper at ~60 µs per request on top of the span itself; this does the same
work (one span, one injected header) without wrapping the HTTP library. Each request's duration also goes to
``http.client.request.duration`` (the stable HTTP metric: seconds, by method,
server, status code or error type, and the route template), which is what
"upstream requests by route and status" is read from (a lean histogram,
:mod:`.lean_metrics`).
"""

from __future__ import annotations

import time
from typing import NamedTuple
from urllib.parse import SplitResult

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from .after_reply import after_reply
from .lean_metrics import HistogramSeries, histogram_recorder
from .lean_tracer import LeanTracer
from .trace_headers import TraceHeaders

__all__ = ["HTTP_CLIENT_DURATION", "UpstreamExchange", "UpstreamSpans"]

HTTP_CLIENT_DURATION = "http.client.request.duration"
# The stable HTTP metric's advisory buckets (seconds).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

HTTP_METHOD = "http.request.method"
HTTP_STATUS = "http.response.status_code"
URL_FULL = "url.full"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
URL_TEMPLATE = "url.template"
UPSTREAM = "meshadapter.upstream"


class UpstreamExchange(NamedTuple):
    """One request in flight: its span, when it started, its method and route template."""

    span: Span
    started: float  # perf_counter seconds
    method: str
    template: str


class UpstreamSpans:
    """Starts and ends the spans of one upstream's requests."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None,
        *,
        origin: SplitResult,
        upstream: str = "",
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._tracer = LeanTracer(tracer_provider, "adapter.upstream")
        self._address = origin.hostname or ""
        self._port = origin.port or {"http": 80, "https": 443}.get(origin.scheme, 0)
        self._upstream = upstream
        self._duration = histogram_recorder(
            meter_provider,
            "adapter.upstream",
            HTTP_CLIENT_DURATION,
            unit="s",
            description="Duration of upstream HTTP requests",
            boundaries=_BUCKETS,
        )
        self._trace_headers = TraceHeaders()
        # Each (method, route, status, error)'s series, bound on first use.
        self._series: dict[tuple[str, str, int | None, str | None], HistogramSeries] = {}

    def start(self, method: str, url: str, route: str, headers: list[tuple[str, str]]) -> UpstreamExchange:
        """A started span (child of the current one) named after the route
        (``GET /v1/devices/{device_id}``); its context is appended to ``headers``.
        The URL carries no secret: credentials travel in headers, never in it."""
        span = self._tracer.start_span(
            route,
            kind=SpanKind.CLIENT,
            attributes={
                HTTP_METHOD: method,
                URL_FULL: url,
                SERVER_ADDRESS: self._address,
                SERVER_PORT: self._port,
            },
        )
        self._trace_headers.append(span, headers)
        template = route.partition(" ")[2] or route  # "GET /v1/x/{id}" -> "/v1/x/{id}"
        return UpstreamExchange(span, time.perf_counter(), method, template)

    def answered(self, exchange: UpstreamExchange, status: int) -> None:
        """Takes the request's end time and duration now and records them after the
        reply to the caller (:mod:`.after_reply`)."""
        seconds = time.perf_counter() - exchange.started
        after_reply(self._finish, exchange, status, None, seconds, time.time_ns())

    def failed(self, exchange: UpstreamExchange, exc: BaseException) -> None:
        """A request that got no answer. Recorded at once: the error propagates now,
        and its span is there before the caller sees the error."""
        self._finish(exchange, None, exc, time.perf_counter() - exchange.started, time.time_ns())

    def _finish(
        self,
        exchange: UpstreamExchange,
        status: int | None,
        exc: BaseException | None,
        seconds: float,
        end_time: int,
    ) -> None:
        span = exchange.span
        error: str | None = None
        if status is not None:
            span.set_attribute(HTTP_STATUS, status)
            error = str(status) if status >= 400 else None
        if exc is not None:
            error = type(exc).__qualname__
        if error is not None:
            span.set_attribute(ERROR_TYPE, error)
            span.set_status(Status(StatusCode.ERROR, str(exc) if exc is not None else None))
        # The span, so the trace-based exemplar points at this request.
        self._series_of(exchange, status, error).record(seconds, span, end_time)
        span.end(end_time=end_time)

    def _series_of(
        self, exchange: UpstreamExchange, status: int | None, error: str | None
    ) -> HistogramSeries:
        key = (exchange.method, exchange.template, status, error)
        series = self._series.get(key)
        if series is None:
            attributes: dict[str, str | int] = {
                HTTP_METHOD: exchange.method,
                SERVER_ADDRESS: self._address,
                SERVER_PORT: self._port,
                URL_TEMPLATE: exchange.template,
                UPSTREAM: self._upstream,
            }
            if status is not None:
                attributes[HTTP_STATUS] = status
            if error is not None:
                attributes[ERROR_TYPE] = error
            series = self._series[key] = self._duration.series(attributes)
        return series
