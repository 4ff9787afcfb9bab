"""The parts of opentelemetry-sdk's metrics pipeline that :mod:`.lean_metrics`
needs and the SDK keeps private, in one place (opentelemetry-sdk 1.45).

The SDK has no public way to add data points of one's own to what a reader
collects (no ``MetricProducer``: opentelemetry-python issue 4768, pull request 5419 still open), nor to ask a
reader its temporality, default aggregation or cardinality limit for an
instrument kind. ``tests/telemetry/test_lean_metrics.py`` compares the lean
histograms' output with the SDK's own for every reader kind the adapter uses,
so a change of these internals fails there, not in production.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.metrics import ExemplarFilter
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics._internal._view_instrument_match import _DEFAULT_CARDINALITY_LIMIT
from opentelemetry.sdk.metrics._internal.instrument import _Histogram
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricReader, MetricsData
from opentelemetry.sdk.metrics.view import Aggregation, DefaultAggregation, ExplicitBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource

__all__ = [
    "Collect",
    "aggregates_as_by_default",
    "chain_collect",
    "exemplar_filter",
    "histogram_aggregation",
    "histogram_cardinality_limit",
    "histogram_temporality",
    "provider_resource",
]

# What a reader calls to collect: (reader, timeout_millis=...) -> MetricsData | None.
Collect = Callable[..., "MetricsData | None"]


def histogram_temporality(reader: MetricReader) -> AggregationTemporality:
    """The temporality ``reader`` asks for histograms (its exporter's preference)."""
    return reader._instrument_class_temporality[_Histogram]


def histogram_aggregation(reader: MetricReader) -> Aggregation:
    """The aggregation ``reader`` prefers for histograms: ``DefaultAggregation``,
    or what its exporter asks for (the OTLP exporter: explicit buckets, or
    exponential ones under ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION``)."""
    return reader._instrument_class_aggregation[_Histogram]


def aggregates_as_by_default(aggregation: Aggregation) -> bool:
    """True when ``aggregation`` makes a histogram's default: explicit buckets at
    the instrument's advisory boundaries (or the SDK's), with min and max."""
    if type(aggregation) is DefaultAggregation:
        return True
    return (
        type(aggregation) is ExplicitBucketHistogramAggregation
        and aggregation._boundaries is None
        and aggregation._record_min_max is True
    )


def histogram_cardinality_limit(reader: MetricReader) -> int:
    """How many attribute sets ``reader`` keeps per histogram before overflow."""
    limits: dict[type, int] = getattr(reader, "_instrument_class_cardinality_limit", {})
    return limits.get(_Histogram, _DEFAULT_CARDINALITY_LIMIT)


def exemplar_filter(provider: SdkMeterProvider) -> ExemplarFilter:
    """The provider's exemplar filter (``OTEL_METRICS_EXEMPLAR_FILTER``, trace-based by default)."""
    return provider._sdk_config.exemplar_filter


def provider_resource(provider: SdkMeterProvider) -> Resource:
    return provider._sdk_config.resource


def chain_collect(
    reader: MetricReader, merge: Callable[[MetricReader, MetricsData | None], MetricsData | None]
) -> None:
    """From now on, what ``reader`` collects passes through ``merge`` first.

    The provider sets a reader's collect callback when it registers the reader;
    this wraps that callback (``MetricReader._set_collect_callback``)."""
    inner: Collect | None = reader._collect  # type: ignore[assignment]
    if inner is None:
        raise ValueError("the reader is not registered with a meter provider")

    def collect(metric_reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
        return merge(metric_reader, inner(metric_reader, timeout_millis=timeout_millis))

    reader._set_collect_callback(collect)  # type: ignore[arg-type]
