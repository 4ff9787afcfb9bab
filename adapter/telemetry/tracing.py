"""Tracer provider set-up: one per process, passed down explicitly.

Spans: a server span per RPC (made by the upstream-backed handlers themselves,
adapter/telemetry/rpc_spans.py; the grpc instrumentation's aio interceptor for
the other services) and a client span per upstream HTTP request
(adapter/telemetry/upstream_spans.py), which also injects W3C ``traceparent``
into the upstream request.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from adapter.config.settings import TelemetrySettings
from adapter.telemetry.shutdown import BoundedBatchSpanProcessor

__all__ = ["build_tracer_provider"]

logger = logging.getLogger(__name__)


def build_tracer_provider(settings: TelemetrySettings, *, set_global: bool = True) -> TracerProvider:
    """A provider exporting over OTLP when configured (``OTEL_EXPORTER_OTLP_*``
    environment variables are read by the exporter itself)."""
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    if settings.otlp_enabled:
        from adapter.telemetry.export_pauses import ExportPauses
        from adapter.telemetry.otlp_exporter import WireOTLPSpanExporter

        exporter = WireOTLPSpanExporter(pauses=ExportPauses(settings.export_pause_microseconds / 1e6))
        provider.add_span_processor(
            BoundedBatchSpanProcessor(exporter, shutdown_timeout_s=settings.flush_timeout_seconds)
        )
        logger.info("exporting traces over OTLP")
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
