"""The lean histograms collect what the SDK's own histograms would: the same
records go through an SDK histogram and a lean one, and every reader kind the
adapter uses must receive the same data points (times aside), exemplars included.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    Histogram,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

from adapter.telemetry.lean_metrics import LeanMeterProvider, histogram_recorder

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
RESOURCE = Resource.create({"service.name": "lean-metrics-test"})


def _span(trace_id: int, span_id: int, *, sampled: bool = True) -> Span:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags))


# (value, attributes, span or None): two attribute sets, values in several buckets,
# spans sampled and not, and measurements with no span at all.
RECORDS: list[tuple[float, dict[str, Any], Span | None]] = [
    (0.003, {"route": "/a", "code": 0}, _span(1, 11)),
    (0.02, {"route": "/a", "code": 0}, _span(1, 12, sampled=False)),
    (0.02, {"route": "/a", "code": 0}, _span(2, 13)),
    (0.7, {"route": "/b", "code": 5}, None),
    (3.0, {"route": "/b", "code": 5}, _span(3, 14)),
    (0.004, {"route": "/a", "code": 0}, _span(4, 15)),
]


def _points(data: MetricsData | None, name: str) -> list[dict[str, Any]]:
    """The data points of metric ``name`` without their times, in a stable order."""
    found: list[dict[str, Any]] = []
    for metric in _metrics(data):
        if metric.name != name:
            continue
        for point in metric.data.data_points:
            found.append(
                {
                    "temporality": metric.data.aggregation_temporality,  # type: ignore[union-attr]
                    "unit": metric.unit,
                    "description": metric.description,
                    "attributes": dict(point.attributes or {}),
                    "count": point.count,  # type: ignore[union-attr]
                    "sum": round(point.sum, 9),  # type: ignore[union-attr]
                    "buckets": tuple(point.bucket_counts),  # type: ignore[union-attr]
                    "bounds": tuple(point.explicit_bounds),  # type: ignore[union-attr]
                    "min": point.min,  # type: ignore[union-attr]
                    "max": point.max,  # type: ignore[union-attr]
                    "exemplars": [
                        (e.value, e.span_id, e.trace_id, e.filtered_attributes) for e in point.exemplars
                    ],
                }
            )
    return sorted(found, key=lambda p: sorted(p["attributes"].items()))


def _metrics(data: MetricsData | None) -> Iterator[Metric]:
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            yield from scope_metrics.metrics


def _record_sdk(
    provider: MeterProvider, records: Sequence[tuple[float, dict[str, Any], Span | None]]
) -> None:
    histogram = provider.get_meter("adapter.test").create_histogram(
        "test.duration", unit="s", description="d", explicit_bucket_boundaries_advisory=BOUNDS
    )
    for value, attributes, span in records:
        histogram.record(value, attributes, context=trace.set_span_in_context(span) if span else None)


def _record_lean(
    provider: MeterProvider, records: Sequence[tuple[float, dict[str, Any], Span | None]]
) -> None:
    histogram = histogram_recorder(provider, "adapter.test", "test.duration", unit="s", description="d",
                                   boundaries=BOUNDS)  # fmt: skip
    for value, attributes, span in records:
        histogram.series(attributes).record(value, span)


def _pair(
    make_reader: Callable[[], InMemoryMetricReader], exemplar_filter: ExemplarFilter | None = None
) -> tuple[MeterProvider, InMemoryMetricReader, LeanMeterProvider, InMemoryMetricReader]:
    """An SDK provider and a lean one, each with its own reader made alike."""
    sdk_reader, lean_reader = make_reader(), make_reader()
    sdk = MeterProvider([sdk_reader], resource=RESOURCE, exemplar_filter=exemplar_filter)
    lean = LeanMeterProvider([lean_reader], resource=RESOURCE, exemplar_filter=exemplar_filter)
    assert lean.lean
    return sdk, sdk_reader, lean, lean_reader


@pytest.mark.parametrize(
    "exemplar_filter",
    [None, TraceBasedExemplarFilter(), AlwaysOnExemplarFilter(), AlwaysOffExemplarFilter()],
    ids=["default", "trace_based", "always_on", "always_off"],
)
def test_cumulative_points_match_the_sdk_collection_after_collection(
    exemplar_filter: ExemplarFilter | None,
) -> None:
    sdk_provider, sdk_reader, lean, lean_reader = _pair(InMemoryMetricReader, exemplar_filter)
    for batch in (RECORDS[:3], RECORDS[3:], []):  # exemplars reset per collection, counts do not
        _record_sdk(sdk_provider, batch)
        _record_lean(lean, batch)
        expected = _points(sdk_reader.get_metrics_data(), "test.duration")
        got = _points(lean_reader.get_metrics_data(), "test.duration")
        assert got == expected
        assert expected  # the comparison saw data points


def _lean_spans() -> list[tuple[float, dict[str, Any], Span | None]]:
    """Records whose spans are lean ones (the adapter's own, read by their plain ids),
    sampled and recorded-only."""
    from opentelemetry.sdk.trace import TracerProvider

    from adapter.telemetry.lean_tracer import LeanSpan, LeanTracer

    from .samplers import RecordOnly

    sampled = [LeanTracer(TracerProvider(), "t").start_span(f"s{i}") for i in range(3)]
    unsampled = LeanTracer(TracerProvider(sampler=RecordOnly()), "t").start_span("u")
    assert all(type(span) is LeanSpan for span in [*sampled, unsampled])
    return [
        (0.003, {"route": "/a"}, sampled[0]),
        (0.02, {"route": "/a"}, sampled[1]),
        (0.021, {"route": "/a"}, unsampled),  # same bucket: not sampled, not the exemplar
        (3.0, {"route": "/b"}, sampled[2]),
    ]


@pytest.mark.parametrize("exemplar_filter", [None, AlwaysOnExemplarFilter()], ids=["default", "always_on"])
def test_exemplars_of_lean_spans_are_the_sdks(exemplar_filter: ExemplarFilter | None) -> None:
    records = _lean_spans()
    sdk_provider, sdk_reader, lean, lean_reader = _pair(InMemoryMetricReader, exemplar_filter)
    _record_sdk(sdk_provider, records)
    _record_lean(lean, records)
    expected = _points(sdk_reader.get_metrics_data(), "test.duration")
    assert _points(lean_reader.get_metrics_data(), "test.duration") == expected
    assert any(point["exemplars"] for point in expected)


def test_delta_points_match_the_sdk_and_start_where_the_last_collection_ended() -> None:
    def reader() -> InMemoryMetricReader:
        return InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})

    sdk_provider, sdk_reader, lean, lean_reader = _pair(reader)
    starts: list[tuple[int, int]] = []
    for batch in (RECORDS[:3], RECORDS[3:], [], RECORDS[:1]):
        _record_sdk(sdk_provider, batch)
        _record_lean(lean, batch)
        expected_data = sdk_reader.get_metrics_data()
        got_data = lean_reader.get_metrics_data()
        assert _points(got_data, "test.duration") == _points(expected_data, "test.duration")
        for metric in _metrics(got_data):
            starts += [(p.start_time_unix_nano, p.time_unix_nano) for p in metric.data.data_points]
    # The second interval starts where the first collection ended; the last one
    # after the empty collection between them, which also ended an interval.
    assert len(starts) == 4 and all(start < end for start, end in starts)
    assert starts[2][0] == starts[0][1]
    assert starts[3][0] > starts[2][1]


def test_a_periodic_reader_exports_the_lean_points_with_its_exporter_s_temporality() -> None:
    class Capture(MetricExporter):
        def __init__(self) -> None:
            super().__init__(preferred_temporality={Histogram: AggregationTemporality.DELTA})
            self.exported: list[MetricsData] = []

        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            self.exported.append(metrics_data)
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    exporters = (Capture(), Capture())
    sdk_reader = PeriodicExportingMetricReader(exporters[0], export_interval_millis=3_600_000)
    lean_reader = PeriodicExportingMetricReader(exporters[1], export_interval_millis=3_600_000)
    sdk_provider = MeterProvider([sdk_reader], resource=RESOURCE)
    lean = LeanMeterProvider([lean_reader], resource=RESOURCE)
    try:
        _record_sdk(sdk_provider, RECORDS)
        _record_lean(lean, RECORDS)
        assert sdk_reader.force_flush() and lean_reader.force_flush()
        expected, got = (_points(e.exported[-1], "test.duration") for e in exporters)
        assert got == expected
        assert {p["temporality"] for p in got} == {AggregationTemporality.DELTA}
        assert exporters[1].exported[-1].resource_metrics[0].resource is lean._sdk_config.resource
    finally:
        sdk_provider.shutdown()
        lean.shutdown()


def test_lean_points_join_the_sdk_instruments_of_their_scope() -> None:
    reader = InMemoryMetricReader()
    provider = LeanMeterProvider([reader], resource=RESOURCE)
    provider.get_meter("adapter.test").create_counter("test.calls").add(3)
    provider.get_meter("adapter.other").create_counter("test.other").add(1)
    _record_lean(provider, RECORDS[:1])
    data = reader.get_metrics_data()
    assert data is not None and len(data.resource_metrics) == 1
    scopes = {
        sm.scope.name: sorted(m.name for m in sm.metrics) for sm in data.resource_metrics[0].scope_metrics
    }
    assert scopes == {"adapter.test": ["test.calls", "test.duration"], "adapter.other": ["test.other"]}


def test_lean_points_alone_carry_the_provider_s_resource() -> None:
    reader = InMemoryMetricReader()
    provider = LeanMeterProvider([reader], resource=RESOURCE)
    assert reader.get_metrics_data() is None  # nothing recorded: nothing collected, as the SDK does
    _record_lean(provider, RECORDS)
    data = reader.get_metrics_data()
    assert data is not None
    assert data.resource_metrics[0].resource.attributes["service.name"] == "lean-metrics-test"
    assert [sm.scope.name for sm in data.resource_metrics[0].scope_metrics] == ["adapter.test"]
    assert sum(p["count"] for p in _points(data, "test.duration")) == len(RECORDS)


def test_two_readers_each_get_every_point_and_their_own_exemplars() -> None:
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    provider = LeanMeterProvider([first, second], resource=RESOURCE)
    _record_lean(provider, RECORDS)
    one = _points(first.get_metrics_data(), "test.duration")
    assert one and one == _points(second.get_metrics_data(), "test.duration")
    # The first reader's collection did not take the second's exemplars.
    assert any(p["exemplars"] for p in one)


def test_the_overflow_series_matches_the_sdk_s_past_the_cardinality_limit() -> None:
    def reader() -> InMemoryMetricReader:
        return InMemoryMetricReader(cardinality_limits={Histogram: 3})

    sdk_provider, sdk_reader, lean, lean_reader = _pair(reader)
    records: list[tuple[float, dict[str, Any], Span | None]] = [
        (0.01 * i, {"route": f"/r{i}"}, None) for i in range(1, 7)
    ]
    _record_sdk(sdk_provider, records)
    _record_lean(lean, records)
    expected = _points(sdk_reader.get_metrics_data(), "test.duration")
    assert any(p["attributes"] == {"otel.metric.overflow": True} for p in expected)
    assert _points(lean_reader.get_metrics_data(), "test.duration") == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_values_the_sdk_drops_are_dropped_with_its_warning(
    value: float, caplog: pytest.LogCaptureFixture
) -> None:
    reader = InMemoryMetricReader()
    provider = LeanMeterProvider([reader], resource=RESOURCE)
    with caplog.at_level(logging.WARNING, logger="adapter.telemetry.lean_metrics"):
        _record_lean(provider, [(value, {"route": "/a"}, None), (0.5, {"route": "/a"}, None)])
    assert "Histogram test.duration" in caplog.text
    [point] = _points(reader.get_metrics_data(), "test.duration")
    assert point["count"] == 1 and point["sum"] == 0.5


def test_the_same_name_in_the_same_scope_is_one_histogram() -> None:
    reader = InMemoryMetricReader()
    provider = LeanMeterProvider([reader], resource=RESOURCE)
    first = histogram_recorder(provider, "adapter.test", "test.duration", unit="s", description="d")
    second = histogram_recorder(provider, "adapter.test", "TEST.duration", unit="s", description="d")
    assert first is second
    assert first.series({"a": 1}) is second.series({"a": 1})
    assert first.series({"a": 1}) is not first.series({"a": True})  # 1 and True are different values


def _with_a_view(reader: InMemoryMetricReader) -> MeterProvider:
    return LeanMeterProvider([reader], views=[View(instrument_name="other")])


def _with_an_exponential_reader(reader: InMemoryMetricReader) -> MeterProvider:
    exponential = InMemoryMetricReader(
        preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()}
    )
    return LeanMeterProvider([reader, exponential])


def _plain_sdk(reader: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider([reader])


@pytest.mark.parametrize("make", [_with_a_view, _with_an_exponential_reader, _plain_sdk])
def test_where_lean_would_differ_the_sdk_histogram_records(
    make: Callable[[InMemoryMetricReader], MeterProvider],
) -> None:
    reader = InMemoryMetricReader()
    provider = make(reader)
    assert not getattr(provider, "lean", False)
    histogram = histogram_recorder(provider, "adapter.test", "test.duration", unit="s", description="d",
                                   boundaries=BOUNDS)  # fmt: skip
    assert type(histogram).__name__ == "_ApiHistogram"
    histogram.series({"route": "/a"}).record(0.02, _span(9, 99))
    [point] = _points(reader.get_metrics_data(), "test.duration")
    assert point["count"] == 1 and point["exemplars"] == [(0.02, 99, 9, {})]


def test_readers_are_fixed_when_the_provider_is_built() -> None:
    provider = LeanMeterProvider([InMemoryMetricReader()])
    with pytest.raises(NotImplementedError):
        provider.add_metric_reader(InMemoryMetricReader())


@pytest.mark.parametrize(
    ("histogram_aggregation", "lean"),
    [(None, True), ("explicit_bucket_histogram", True), ("base2_exponential_bucket_histogram", False)],
)
def test_the_adapter_s_own_provider_records_lean_histograms_unless_its_exporter_wants_other_ones(
    monkeypatch: pytest.MonkeyPatch, histogram_aggregation: str | None, lean: bool
) -> None:
    """The provider ``build_meter_provider`` makes, with both of its readers
    (Prometheus and OTLP), and what ``/metrics`` then shows."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from adapter.config.settings import TelemetrySettings
    from adapter.telemetry.metrics import build_meter_provider
    from adapter.telemetry.rpc_spans import RpcSpans

    # A closed port and a short timeout: the final export at shutdown fails fast.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    if histogram_aggregation is None:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", raising=False)
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", histogram_aggregation)
    provider, registry = build_meter_provider(TelemetrySettings(otlp_enabled=True))
    assert isinstance(provider, LeanMeterProvider) and registry is not None
    try:
        assert provider.lean is lean
        spans = RpcSpans(None, "/openframe.v1.DeviceService/GetDevice", provider)
        spans.end(spans.start(None))  # no running loop: recorded at once
        counts = [
            sample
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for sample in family.samples
            if sample.name == "rpc_server_duration_milliseconds_count"
        ]
        assert [(c.labels["rpc_method"], c.labels["rpc_grpc_status_code"], c.value) for c in counts] == [
            ("GetDevice", "0", 1.0)
        ]
    finally:
        provider.shutdown(timeout_millis=2_000)


def test_records_from_several_threads_while_readers_collect_are_all_counted() -> None:
    """Calls record on the loop's thread while the OTLP reader's thread or a
    Prometheus scrape collects: no record is lost or counted twice."""
    cumulative = InMemoryMetricReader()
    delta = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    provider = LeanMeterProvider([cumulative, delta], resource=RESOURCE)
    histogram = histogram_recorder(provider, "adapter.test", "test.duration", unit="s", description="d")
    threads, per_thread = 4, 5_000
    delta_counts: list[int] = []
    done = threading.Event()

    def record(n: int) -> None:
        series = histogram.series({"thread": n})
        for i in range(per_thread):
            series.record(float(i % 7))

    def collect() -> None:
        while not done.is_set():
            cumulative.get_metrics_data()
            delta_counts.extend(p["count"] for p in _points(delta.get_metrics_data(), "test.duration"))

    collector = threading.Thread(target=collect)
    collector.start()
    workers = [threading.Thread(target=record, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    collector.join()
    delta_counts.extend(p["count"] for p in _points(delta.get_metrics_data(), "test.duration"))
    final = _points(cumulative.get_metrics_data(), "test.duration")
    assert [p["count"] for p in final] == [per_thread] * threads
    assert [p["sum"] for p in final] == [float(sum(i % 7 for i in range(per_thread)))] * threads
    assert sum(delta_counts) == threads * per_thread
