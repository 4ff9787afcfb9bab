"""Meter provider set-up: one per process, passed down explicitly.

Readers: a Prometheus reader (``opentelemetry-exporter-prometheus``) filling a
registry of its own that the operator port serves on ``/metrics``, and a periodic
OTLP exporter when OTLP is configured. Without either, instruments are no-ops.
The provider is the SDK's, able to collect the lean per-call histograms too
(:mod:`.lean_metrics`).
"""

from __future__ import annotations

import logging

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from adapter.config.settings import TelemetrySettings

from .lean_metrics import LeanMeterProvider

__all__ = ["build_meter_provider"]

logger = logging.getLogger(__name__)


def build_meter_provider(
    settings: TelemetrySettings, *, set_global: bool = False
) -> tuple[MeterProvider | None, CollectorRegistry | None]:
    """``(provider, registry)``: the registry is what ``/metrics`` renders (None
    when Prometheus is off); the provider is None when no reader is configured."""
    readers: list[MetricReader] = []
    registry: CollectorRegistry | None = None
    if settings.ops_enabled and settings.prometheus_enabled:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        registry = CollectorRegistry(auto_describe=False)
        readers.append(PrometheusMetricReader(registry=registry))
    if settings.otlp_enabled:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        logger.info("exporting metrics over OTLP")
    if not readers:
        return None, None
    provider = LeanMeterProvider(
        resource=Resource.create({"service.name": settings.service_name}), metric_readers=readers
    )
    if set_global:
        metrics.set_meter_provider(provider)
    return provider, registry
