"""The one place that reads the tracing SDK's private state (the metrics side is
:mod:`.sdk_metrics_compat`).

The SDK's ``Tracer`` keeps its ``SpanLimits`` private (``_span_limits``, set from
the provider's limits or the ``OTEL_SPAN_*_LIMIT`` variables) and has no public
accessor; the lean spans need the link count limit to stay equivalent to the
SDK's. ``tests/telemetry/test_sdk_trace_compat.py`` fails if the SDK changes it.
"""

from __future__ import annotations

import sys

from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace import Tracer as SdkTracer

__all__ = ["span_link_limit"]


def span_link_limit(tracer: SdkTracer) -> int:
    """How many links a span of ``tracer`` keeps (``sys.maxsize``: no limit)."""
    limits = getattr(tracer, "_span_limits", None)
    if not isinstance(limits, SpanLimits):
        raise TypeError(
            "opentelemetry-sdk's Tracer no longer keeps its SpanLimits in _span_limits: "
            "update adapter/telemetry/sdk_trace_compat.py"
        )
    return sys.maxsize if limits.max_links is None else limits.max_links
