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

import os
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

N = 2000 if os.environ.get("BENCH_SMOKE") == "1" else 30000
ROUNDS = 1 if os.environ.get("BENCH_SMOKE") == "1" else 3
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


def _us_per_call(one: Callable[[], None]) -> float:
    started = time.thread_time_ns()
    for _ in range(N):
        one()
    return (time.thread_time_ns() - started) / N / 1000


def main() -> None:
    resource = Resource.create({"service.name": "mesh-adapter"})
    sdk = MeterProvider(_readers(), resource=resource)
    lean = LeanMeterProvider(_readers(), resource=resource)
    arms = {
        "SDK histograms (Histogram.record)": _sdk_call(sdk),
        "lean histograms (series.record)": _lean_call(lean),
    }
    figures: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(ROUNDS):  # interleaved, so the machine's drift hits both
        for name, one in arms.items():
            figures[name].append(_us_per_call(one))
    sdk.shutdown()
    lean.shutdown()
    print(f"{'two records per call, ' + str(N) + ' calls, best of ' + str(ROUNDS):<44} {'us/call':>9}")
    best = {name: min(values) for name, values in figures.items()}
    for name, value in best.items():
        print(f"{name:<44} {value:>9.1f}")
    sdk_us, lean_us = best.values()
    print(f"lean / SDK: {lean_us / sdk_us:.2f} ({sdk_us - lean_us:.1f} us less per call)")


if __name__ == "__main__":
    main()
