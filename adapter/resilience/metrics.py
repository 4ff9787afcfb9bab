"""Names of the resilience metrics, in one place (OpenTelemetry, ``meter_provider=``).

| name | kind | attributes |
|---|---|---|
| ``mesh_adapter.upstream.retries`` | counter | upstream, route, cause |
| ``mesh_adapter.upstream.retry.stopped`` | counter | upstream, route, reason |
| ``mesh_adapter.upstream.rate_limit.remaining`` | gauge | upstream |
| ``mesh_adapter.upstream.rate_limit.throttled`` | counter | upstream, outcome (``waited``/``refused``) |
| ``mesh_adapter.upstream.circuit_breaker.state`` | gauge (0 closed, 1 half-open, 2 open) | upstream, route |
| ``mesh_adapter.upstream.cache.lookups`` | counter | upstream, result (hit, miss, revalidated, bypass) |
"""

from __future__ import annotations

from opentelemetry import metrics

__all__ = [
    "BREAKER_STATE",
    "CACHE_LOOKUPS",
    "RATE_LIMIT_REMAINING",
    "RATE_LIMIT_THROTTLED",
    "RETRIES",
    "RETRY_STOPPED",
    "meter",
]

RETRIES = "mesh_adapter.upstream.retries"
RETRY_STOPPED = "mesh_adapter.upstream.retry.stopped"
RATE_LIMIT_REMAINING = "mesh_adapter.upstream.rate_limit.remaining"
RATE_LIMIT_THROTTLED = "mesh_adapter.upstream.rate_limit.throttled"
BREAKER_STATE = "mesh_adapter.upstream.circuit_breaker.state"
CACHE_LOOKUPS = "mesh_adapter.upstream.cache.lookups"


def meter(meter_provider: metrics.MeterProvider | None) -> metrics.Meter:
    """The resilience layers' meter (the global provider when none is given)."""
    return metrics.get_meter("adapter.resilience", meter_provider=meter_provider)
