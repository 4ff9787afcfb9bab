"""Histograms recorded once per call (``rpc.server.duration``,
``http.client.request.duration``) without the SDK's measurement pipeline, and
collected by the SDK's own readers and exporters.

Written by hand because of what the SDK's record costs on the call path. Each
``Histogram.record`` builds a ``Measurement``, asks the exemplar filter, and for
every reader copies the attributes, hashes them recursively (type checks per
value, a sorted copy per mapping), takes two locks and offers the value to an
exemplar reservoir. In the running adapter, leaving out a call's two records
made its CPU ~16% lower (``bench.peer.side_by_side``, cache hits alike). The
Python SDK has no bound instruments and no metric producer to feed its readers
otherwise.

Here an attribute set is bound once (:meth:`HistogramRecorder.series`), and a
record is a bucket search and a few additions per reader under one lock. At
collection the readers receive the same ``HistogramDataPoint`` the SDK would
produce: each reader's temporality (cumulative, or delta when its exporter
prefers it), the instrument's advisory boundaries, min and max, and the
exemplars of the provider's exemplar filter (trace-based by default: the last
sampled measurement of each bucket, with its span and trace id), reset at every
collection like the SDK's aligned-bucket reservoir. The data points are merged
into what each reader collects from the SDK, under the instrument's scope.

Falls back to the SDK's own histogram, behind the same interface, wherever the
lean one would not be equivalent: a provider that is not a
:class:`LeanMeterProvider`, views, a reader that prefers another aggregation
for histograms than explicit buckets at the instrument's boundaries (e.g.
exponential ones), or readers with different cardinality limits. Not kept: the
private meter configurator (experimental), and readers added after construction
(:meth:`LeanMeterProvider.add_metric_reader` refuses them).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    Exemplar,
    ExemplarFilter,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, TraceFlags

from . import sdk_metrics_compat as compat
from .lean_tracer import LeanSpan

__all__ = ["HistogramRecorder", "HistogramSeries", "LeanMeterProvider", "histogram_recorder"]

logger = logging.getLogger(__name__)

# The SDK's default boundaries, for an instrument without advisory ones.
_DEFAULT_BOUNDARIES = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
                       7500.0, 10000.0)  # fmt: skip
_OVERFLOW = {"otel.metric.overflow": True}


class HistogramSeries(Protocol):
    """One attribute set of a histogram, bound once."""

    def record(self, amount: float, span: Span | None = None, time_unix_nano: int = 0) -> None:
        """Records ``amount``; ``span`` is the measurement's context for exemplars
        (None: the current span), ``time_unix_nano`` when it was taken (0: now)."""


class HistogramRecorder(Protocol):
    def series(self, attributes: Mapping[str, Any]) -> HistogramSeries:
        """The series of ``attributes``; the same object for equal attributes."""


def histogram_recorder(
    meter_provider: MeterProvider | None,
    scope: str,
    name: str,
    *,
    unit: str,
    description: str,
    boundaries: Sequence[float] | None = None,
) -> HistogramRecorder:
    """A histogram of the provider (the global one when None): lean on a
    :class:`LeanMeterProvider` that allows it, the SDK's (or the API's no-op) otherwise."""
    provider = meter_provider or metrics.get_meter_provider()
    if isinstance(provider, LeanMeterProvider) and provider.lean:
        return provider.lean_histogram(scope, name, unit=unit, description=description, boundaries=boundaries)
    histogram = metrics.get_meter(scope, meter_provider=provider).create_histogram(
        name, unit=unit, description=description, explicit_bucket_boundaries_advisory=boundaries
    )
    return _ApiHistogram(histogram)


class _ApiSeries:
    __slots__ = ("_attributes", "_record")

    def __init__(self, histogram: metrics.Histogram, attributes: Mapping[str, Any]) -> None:
        self._record = histogram.record
        self._attributes = dict(attributes)

    def record(self, amount: float, span: Span | None = None, time_unix_nano: int = 0) -> None:
        context = trace.set_span_in_context(span) if span is not None else None
        self._record(amount, self._attributes, context=context)


class _ApiHistogram:
    def __init__(self, histogram: metrics.Histogram) -> None:
        self._histogram = histogram
        self._series: dict[Any, _ApiSeries] = {}

    def series(self, attributes: Mapping[str, Any]) -> HistogramSeries:
        key = _attributes_key(attributes)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = _ApiSeries(self._histogram, attributes)
        return found


def _attributes_key(attributes: Mapping[str, Any]) -> Any:
    # The type too: True, 1 and 1.0 are different attribute values.
    return frozenset((k, type(v), tuple(v) if isinstance(v, list) else v) for k, v in attributes.items())


#: An exemplar's fields in Exemplar's order (attributes, value, time, span id, trace id).
_ExemplarFields = tuple[dict[str, Any] | None, float, int, int, int]


def _exemplar(kept: Exemplar | _ExemplarFields) -> Exemplar:
    return Exemplar(*kept) if type(kept) is tuple else kept  # type: ignore[return-value]


class _Interval:
    """A series' aggregation for one reader: since the start (cumulative) or since
    the reader's last collection (delta)."""

    __slots__ = ("counts", "exemplars", "high", "low", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total: float = 0
        self.low = math.inf
        self.high = -math.inf
        self.exemplars: dict[int, Exemplar | _ExemplarFields] = {}


class _LeanSeries:
    __slots__ = (
        "_bounds",
        "_exemplar_attributes",
        "_histogram",
        "_lock",
        "attributes",
        "intervals",
        "started",
    )

    def __init__(self, histogram: _LeanHistogram, attributes: Mapping[str, Any]) -> None:
        self._histogram = histogram
        self._lock = histogram.lock
        self._bounds = histogram.boundaries
        self.attributes = dict(attributes)
        # What the SDK's exemplars carry: the measurement's attributes that the
        # point does not (none without views), None for a measurement without any.
        self._exemplar_attributes: dict[str, Any] | None = {} if self.attributes else None
        self.started = 0  # the first record's time, as the SDK starts an aggregation
        self.intervals = [_Interval(len(self._bounds) + 1) for _ in histogram.temporalities]

    def record(self, amount: float, span: Span | None = None, time_unix_nano: int = 0) -> None:
        if not 0 <= amount < math.inf:
            self._histogram.refuse(amount)
            return
        index = bisect_left(self._bounds, amount)
        exemplar = self._histogram.exemplar(amount, span, time_unix_nano, self._exemplar_attributes)
        with self._lock:
            if not self.started:
                self.started = time_unix_nano or time_ns()
            for interval in self.intervals:
                interval.counts[index] += 1
                interval.total += amount
                if amount < interval.low:
                    interval.low = amount
                if amount > interval.high:
                    interval.high = amount
                if exemplar is not None:
                    interval.exemplars[index] = exemplar


class _LeanHistogram:
    """One histogram instrument's series and how each reader collects them."""

    def __init__(
        self,
        name: str,
        *,
        unit: str,
        description: str,
        boundaries: Sequence[float] | None,
        temporalities: Sequence[AggregationTemporality],
        exemplar_filter: ExemplarFilter,
        cardinality_limit: int,
    ) -> None:
        self.name, self.unit, self.description = name, unit, description
        self.boundaries = tuple(_DEFAULT_BOUNDARIES if boundaries is None else boundaries)
        if any(not math.isfinite(b) for b in self.boundaries) or any(
            a >= b for a, b in zip(self.boundaries, self.boundaries[1:], strict=False)
        ):
            raise ValueError(f"histogram {name}: boundaries must be finite and strictly increasing")
        self.temporalities = tuple(temporalities)
        self.lock = threading.Lock()
        self._filter = exemplar_filter
        self._limit = cardinality_limit
        self._series: dict[Any, _LeanSeries] = {}
        self._last_collection: list[int] = [0] * len(self.temporalities)

    def series(self, attributes: Mapping[str, Any]) -> HistogramSeries:
        key = _attributes_key(attributes)
        found = self._series.get(key)
        if found is not None:
            return found
        with self.lock:
            found = self._series.get(key)
            if found is None:
                if len(self._series) >= self._limit:  # the SDK's overflow series
                    key, attributes = _attributes_key(_OVERFLOW), _OVERFLOW
                    found = self._series.get(key)
                if found is None:
                    found = self._series[key] = _LeanSeries(self, attributes)
        return found

    def refuse(self, amount: float) -> None:
        # The SDK's own warnings for what it drops.
        if not math.isfinite(amount):
            logger.warning(
                "Record amount %s is not finite on Histogram %s, ignoring measurement.", amount, self.name
            )
        else:
            logger.warning("Record amount must be non-negative on Histogram %s.", self.name)

    def exemplar(
        self, amount: float, span: Span | None, time_unix_nano: int, attributes: dict[str, Any] | None
    ) -> Exemplar | _ExemplarFields | None:
        kind = type(self._filter)
        if kind is AlwaysOffExemplarFilter:
            return None
        if span is None:
            span = trace.get_current_span()
        if type(span) is LeanSpan and kind is TraceBasedExemplarFilter:
            # The default filter, for a lean span: its ids without SpanContext's properties.
            if not span.trace_flags & TraceFlags.SAMPLED:
                return None
            # Its fields, made an Exemplar when collected (most are replaced before that:
            # one is kept a bucket, and building the SDK's frozen dataclass cost ~0.7 µs).
            return (attributes, amount, time_unix_nano or time_ns(), span.span_id, span.trace_id)
        invalid = span is trace.INVALID_SPAN
        if kind is TraceBasedExemplarFilter:
            if invalid or not span.get_span_context().trace_flags.sampled:
                return None
        elif kind is not AlwaysOnExemplarFilter and not self._filter.should_sample(
            amount, time_unix_nano, attributes, trace.set_span_in_context(span)
        ):
            return None
        ids = None if invalid else span.get_span_context()
        return Exemplar(
            attributes,
            amount,
            time_unix_nano or time_ns(),
            ids.span_id if ids is not None else None,
            ids.trace_id if ids is not None else None,
        )

    def collect(self, reader: int, now: int) -> Metric | None:
        """The reader's data points, as the SDK would make them at ``now``."""
        temporality = self.temporalities[reader]
        delta = temporality is AggregationTemporality.DELTA
        points: list[HistogramDataPoint] = []
        with self.lock:
            started = [series for series in self._series.values() if series.started]
            if not started:  # the SDK has no aggregation before the first record
                return None
            previous, self._last_collection[reader] = self._last_collection[reader], now
            for series in started:
                interval = series.intervals[reader]
                count = sum(interval.counts)
                if delta and not count:
                    continue
                exemplars = [_exemplar(interval.exemplars[i]) for i in sorted(interval.exemplars)]
                points.append(
                    HistogramDataPoint(
                        attributes=series.attributes,
                        start_time_unix_nano=(previous or series.started) if delta else series.started,
                        time_unix_nano=now,
                        count=count,
                        sum=interval.total,
                        bucket_counts=tuple(interval.counts),
                        explicit_bounds=self.boundaries,
                        min=interval.low,
                        max=interval.high,
                        exemplars=exemplars,
                    )
                )
                if delta:
                    series.intervals[reader] = _Interval(len(self.boundaries) + 1)
                else:
                    interval.exemplars = {}
        if not points:
            return None
        data = Histogram(data_points=points, aggregation_temporality=temporality)
        return Metric(name=self.name, description=self.description, unit=self.unit, data=data)


class LeanMeterProvider(SdkMeterProvider):
    """The SDK's meter provider, whose readers also collect lean histograms
    (:func:`histogram_recorder`). Everything else is the SDK's."""

    def __init__(self, metric_readers: Sequence[MetricReader] = (), **kwargs: Any) -> None:
        super().__init__(metric_readers=metric_readers, **kwargs)
        self._readers = tuple(metric_readers)
        self._histograms: dict[tuple[str, str], tuple[InstrumentationScope, _LeanHistogram]] = {}
        self._histograms_lock = threading.Lock()
        limits = {compat.histogram_cardinality_limit(r) for r in self._readers}
        self.lean: bool = (
            bool(self._readers)
            and not kwargs.get("views")
            and len(limits) == 1
            and all(compat.aggregates_as_by_default(compat.histogram_aggregation(r)) for r in self._readers)
        )
        self._limit = limits.pop() if len(limits) == 1 else 0
        if self.lean:
            for index, reader in enumerate(self._readers):
                compat.chain_collect(reader, functools.partial(self._merge, index))

    def add_metric_reader(self, metric_reader: MetricReader) -> None:
        raise NotImplementedError("LeanMeterProvider's readers are fixed when it is built")

    def lean_histogram(
        self, scope: str, name: str, *, unit: str, description: str, boundaries: Sequence[float] | None = None
    ) -> HistogramRecorder:
        """The histogram ``name`` of ``scope``; the same one for every caller, as the SDK does."""
        key = (scope, name.lower())
        with self._histograms_lock:
            if key not in self._histograms:
                histogram = _LeanHistogram(
                    name,
                    unit=unit,
                    description=description,
                    boundaries=boundaries,
                    temporalities=[compat.histogram_temporality(r) for r in self._readers],
                    exemplar_filter=compat.exemplar_filter(self),
                    cardinality_limit=self._limit,
                )
                # As the SDK's get_meter(scope) names the scope.
                self._histograms[key] = (InstrumentationScope(scope, None, None, None), histogram)
            return self._histograms[key][1]

    def _merge(self, reader: int, _reader: MetricReader, data: MetricsData | None) -> MetricsData | None:
        now = time_ns()
        with self._histograms_lock:
            histograms = list(self._histograms.values())
        lean: dict[InstrumentationScope, list[Metric]] = {}
        for scope, histogram in histograms:
            metric = histogram.collect(reader, now)
            if metric is not None:
                lean.setdefault(scope, []).append(metric)
        if not lean:
            return data
        if data is None:
            resource = compat.provider_resource(self)
            return MetricsData(
                resource_metrics=[
                    ResourceMetrics(
                        resource=resource,
                        scope_metrics=[
                            ScopeMetrics(scope, m, scope.schema_url or "") for scope, m in lean.items()
                        ],
                        schema_url=resource.schema_url,
                    )
                ]
            )
        merged: list[ResourceMetrics] = []
        for position, resource_metrics in enumerate(data.resource_metrics):
            scopes = list(resource_metrics.scope_metrics)
            if position == 0:  # the SDK makes one, for the provider's resource
                for index, scope_metrics in enumerate(scopes):
                    extra = lean.pop(scope_metrics.scope, None)
                    if extra:
                        scopes[index] = ScopeMetrics(
                            scope_metrics.scope, [*scope_metrics.metrics, *extra], scope_metrics.schema_url
                        )
                scopes.extend(_scope_metrics(lean))
            merged.append(ResourceMetrics(resource_metrics.resource, scopes, resource_metrics.schema_url))
        return MetricsData(resource_metrics=merged)


def _scope_metrics(lean: dict[InstrumentationScope, list[Metric]]) -> list[ScopeMetrics]:
    return [ScopeMetrics(scope, metrics, scope.schema_url or "") for scope, metrics in lean.items()]
