"""A CLIENT span per upstream HTTP request, made with the OpenTelemetry API.

The span's context travels to the upstream as W3C ``traceparent`` (the global
propagator). Attribute names follow the stable HTTP semantic conventions and
live here only. The peer bench measured opentelemetry-instrumentation-httpx's
wrapper at ~60 µs per request on top of the span itself; this does the same
work (one span, one injected header) without wrapping the HTTP library.
"""

from __future__ import annotations

from urllib.parse import SplitResult

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

__all__ = ["UpstreamSpans"]

HTTP_METHOD = "http.request.method"
HTTP_STATUS = "http.response.status_code"
URL_FULL = "url.full"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"


class UpstreamSpans:
    """Starts and ends the spans of one upstream's requests."""

    def __init__(self, tracer_provider: TracerProvider | None, *, origin: SplitResult) -> None:
        self._tracer = trace.get_tracer("adapter.upstream", tracer_provider=tracer_provider)
        self._address = origin.hostname or ""
        self._port = origin.port or {"http": 80, "https": 443}.get(origin.scheme, 0)

    def start(self, method: str, url: str, route: str, headers: list[tuple[str, str]]) -> Span:
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
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        headers.extend(carrier.items())
        return span

    @staticmethod
    def answered(span: Span, status: int) -> None:
        span.set_attribute(HTTP_STATUS, status)
        if status >= 400:
            span.set_attribute(ERROR_TYPE, str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    @staticmethod
    def failed(span: Span, exc: BaseException) -> None:
        span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, str(exc)))
        span.end()
