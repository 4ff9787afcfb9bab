"""Meter provider set-up: one per process, passed down explicitly.

Metrics (rate-limit budget left, breaker state, retries, cache hits, spool depth)
are exported over OTLP when configured, like traces; without an exporter the
instruments are no-ops and cost nothing.
"""

from __future__ import annotations

import logging

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from adapter.config.settings import TelemetrySettings

__all__ = ["build_meter_provider"]

logger = logging.getLogger(__name__)


def build_meter_provider(settings: TelemetrySettings, *, set_global: bool = True) -> MeterProvider | None:
    """An OTLP-exporting provider, or None (no-op instruments) when OTLP is off."""
    if not settings.otlp_enabled:
        return None
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    provider = SdkMeterProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())],
    )
    if set_global:
        metrics.set_meter_provider(provider)
    logger.info("exporting metrics over OTLP")
    return provider
