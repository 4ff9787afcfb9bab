"""What a call's two spans cost: the SDK's own span against the lean span the
adapter makes (``adapter/telemetry/lean_tracer.py``), in a loop, side by side in
one run. Per call, as the adapter does it: a SERVER span made current, a CLIENT
span as its child with ``traceparent`` injected, a status attribute on each, both
ended into a batch processor whose exporter drops them (what an OTLP exporter
receives). The CPU is the calling thread's own, so the export thread's work and
waits for the GIL do not count.

    python -m bench.span_cost
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from adapter.telemetry.lean_tracer import LeanTracer
from bench.loop_cost import CALLS, compare

SERVER = {"rpc.system": "grpc", "rpc.service": "openframe.v1.DeviceService", "rpc.method": "GetDevice"}
CLIENT = {
    "http.request.method": "GET",
    "url.full": "http://127.0.0.1:8080/v1/devices/dev_001",
    "server.address": "127.0.0.1",
    "server.port": 8080,
}


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _call(server: Any, client: Any) -> Callable[[], None]:
    def one() -> None:
        span = server.start_span(
            "/openframe.v1.DeviceService/GetDevice", kind=SpanKind.SERVER, attributes=SERVER
        )
        token = context.attach(trace.set_span_in_context(span))
        request = client.start_span("GET /v1/devices/{device_id}", kind=SpanKind.CLIENT, attributes=CLIENT)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(request))
        context.detach(token)
        request.set_attribute("http.response.status_code", 200)
        request.end()
        span.set_attribute("rpc.grpc.status_code", 0)
        span.end()

    return one


def main() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "mesh-adapter"}))
    provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=4 * CALLS))
    sdk = _call(provider.get_tracer("adapter.server"), provider.get_tracer("adapter.upstream"))
    lean = _call(LeanTracer(provider, "adapter.server"), LeanTracer(provider, "adapter.upstream"))
    compare("two spans", ("SDK spans (Tracer.start_span)", sdk), ("lean spans (LeanTracer)", lean))
    provider.shutdown()


if __name__ == "__main__":
    main()
