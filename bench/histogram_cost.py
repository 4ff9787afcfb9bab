"""What a call's two duration records cost: the SDK's ``Histogram.record`` against
the lean histograms the adapter records (``adapter/telemetry/lean_metrics.py``), in
a loop, side by side in one run. Per call, as the adapter does it: one record of
``rpc.server.duration`` and one of ``http.client.request.duration``, each with the
call's sampled span as its exemplar context, into a provider with the adapter's
two readers (Prometheus, and a periodic OTLP reader whose exporter drops what it
gets). The CPU is the calling thread's own.

    python -m bench.histogram_cost
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.util.types import AnyValue
from prometheus_client import CollectorRegistry

from adapter.telemetry.lean_metrics import LeanMeterProvider, histogram_recorder
from bench.loop_cost import compare

RPC: dict[str, AnyValue] = {
    "rpc.system": "grpc",
    "rpc.service": "openframe.v1.DeviceService",
    "rpc.method": "GetDevice",
    "rpc.grpc.status_code": 0,
}
HTTP: dict[str, AnyValue] = {
    "http.request.method": "GET",
    "server.address": "127.0.0.1",
    "server.port": 8080,
    "url.template": "/v1/devices/{device_id}",
    "meshadapter.upstream": "openframe",
    "http.response.status_code": 200,
}
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class _Drop(MetricExporter):
    """What the OTLP exporter asks for (cumulative, explicit buckets); sends nothing."""

    def __init__(self) -> None:
        super().__init__(
            preferred_temporality={Histogram: AggregationTemporality.CUMULATIVE},
            preferred_aggregation={Histogram: ExplicitBucketHistogramAggregation()},
        )

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _readers() -> Sequence[MetricReader]:
    return (
        PrometheusMetricReader(registry=CollectorRegistry(auto_describe=False)),
        PeriodicExportingMetricReader(_Drop(), export_interval_millis=3_600_000),
    )


def _sdk_call(provider: MeterProvider) -> Callable[[], None]:
    rpc = provider.get_meter("adapter.server").create_histogram("rpc.server.duration", unit="ms")
    http = provider.get_meter("adapter.upstream").create_histogram(
        "http.client.request.duration", unit="s", explicit_bucket_boundaries_advisory=HTTP_BUCKETS
    )
    span = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(7, 9, False, TraceFlags(TraceFlags.SAMPLED)))
    )

    def one() -> None:
        http.record(0.0004, HTTP, context=span)
        rpc.record(0.7, RPC, context=span)

    return one


def _lean_call(provider: LeanMeterProvider) -> Callable[[], None]:
    assert provider.lean
    rpc = histogram_recorder(
        provider, "adapter.server", "rpc.server.duration", unit="ms", description=""
    ).series(RPC)
    http = histogram_recorder(provider, "adapter.upstream", "http.client.request.duration", unit="s",
                              description="", boundaries=HTTP_BUCKETS).series(HTTP)  # fmt: skip
    span = NonRecordingSpan(SpanContext(7, 9, False, TraceFlags(TraceFlags.SAMPLED)))
    now = time.time_ns()

    def one() -> None:
        http.record(0.0004, span, now)
        rpc.record(0.7, span, now)

    return one


def main() -> None:
    resource = Resource.create({"service.name": "mesh-adapter"})
    sdk = MeterProvider(_readers(), resource=resource)
    lean = LeanMeterProvider(_readers(), resource=resource)
    compare(
        "two records",
        ("SDK histograms (Histogram.record)", _sdk_call(sdk)),
        ("lean histograms (series.record)", _lean_call(lean)),
    )
    sdk.shutdown()
    lean.shutdown()


if __name__ == "__main__":
    main()
