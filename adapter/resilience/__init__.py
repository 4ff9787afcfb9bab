"""Layers between handlers and the upstream client, each an
:class:`~adapter.upstream.caller.UpstreamCaller` wrapping the next: response
cache, circuit breaker, retries (with a budget), client-side rate limiters (one per
quota, chosen by :class:`QuotaRouter`).
:mod:`adapter.assembly.callers` stacks them; docs/resilience.md explains them.
"""

from __future__ import annotations

from .cache import ResponseCache
from .circuit_breaker import BreakerState, CircuitBreakerCaller
from .errors import CircuitOpenError, LocalRateLimitExceeded
from .layer import CallerLayer, find_layer
from .quota_router import QuotaRouter
from .rate_limiter import UpstreamRateLimiter
from .retry import RetryingCaller, RetryPolicy
from .retry_budget import RetryBudget

__all__ = [
    "BreakerState",
    "CallerLayer",
    "CircuitBreakerCaller",
    "CircuitOpenError",
    "LocalRateLimitExceeded",
    "QuotaRouter",
    "ResponseCache",
    "RetryBudget",
    "RetryPolicy",
    "RetryingCaller",
    "UpstreamRateLimiter",
    "find_layer",
]
