"""``upstreams.<name>.resilience``: retries, retry budget, client-side rate limit,
circuit breaker and response cache of one upstream. See docs/resilience.md."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CacheSettings",
    "CircuitBreakerSettings",
    "RateLimitSettings",
    "ResilienceSettings",
    "RetryBudgetSettings",
    "RetrySettings",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetrySettings(_Frozen):
    """Retries of idempotent calls on transient failures."""

    #: Attempts per call, the first included (``1`` = never retry).
    max_attempts: int = Field(default=3, ge=1, le=10)
    #: Backoff before retry ``n`` is random in ``[0, min(max, initial * multiplier**(n-1))]``.
    initial_backoff_seconds: float = Field(default=0.1, gt=0)
    max_backoff_seconds: float = Field(default=5.0, gt=0)
    multiplier: float = Field(default=2.0, ge=1)
    #: HTTP statuses worth another attempt (``Retry-After`` is honoured on each).
    retryable_statuses: frozenset[int] = frozenset({429, 502, 503, 504})


class RetryBudgetSettings(_Frozen):
    """Caps retries to a share of the calls, so an outage does not multiply load."""

    #: Retries allowed per call made within ``window_seconds`` (0.2 = at most +20% load).
    ratio: float = Field(default=0.2, ge=0)
    #: Retries always allowed per second regardless of traffic (for quiet upstreams).
    min_retries_per_second: float = Field(default=1.0, ge=0)
    window_seconds: float = Field(default=10.0, gt=0)


class RateLimitSettings(_Frozen):
    """Client-side quota per upstream credential (both vendors document 1000 a minute)."""

    enabled: bool = True
    requests_per_window: int = Field(default=1000, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)
    #: Adopt a lower ``X-RateLimit-Limit*`` and account for ``X-RateLimit-Remaining*``.
    learn_from_headers: bool = True


class CircuitBreakerSettings(_Frozen):
    """One breaker per upstream route."""

    enabled: bool = True
    #: Consecutive failed calls that open the breaker.
    failure_threshold: int = Field(default=5, ge=1)
    #: How long an open breaker fails fast before letting probes through.
    open_seconds: float = Field(default=10.0, gt=0)
    #: Concurrent probes when half-open; this many successes close it again.
    half_open_probes: int = Field(default=1, ge=1)


class CacheSettings(_Frozen):
    """Cache of the reads the protos mark with ``cache_ttl_seconds``."""

    enabled: bool = True
    max_entries: int = Field(default=1000, ge=1)
    max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    #: Caps every TTL declared in the protos (``None``: as declared).
    max_ttl_seconds: float | None = Field(default=None, ge=0)


class ResilienceSettings(_Frozen):
    #: Longest wait an upstream may impose: ``Retry-After`` (pausing the client-side
    #: quota and spacing retries), ``retryAfter`` in error bodies, the token
    #: endpoint's ``Retry-After`` and every ``RetryInfo`` sent to callers.
    max_server_delay_seconds: float = Field(default=300.0, gt=0)
    retry: RetrySettings = RetrySettings()
    retry_budget: RetryBudgetSettings = RetryBudgetSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    cache: CacheSettings = CacheSettings()
