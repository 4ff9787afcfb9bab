"""Failures the resilience layers raise themselves (the upstream was not asked).

::

    UpstreamError (adapter.upstream.errors)
    ├── LocalRateLimitExceeded   the client-side quota is spent and the deadline cannot wait
    │   └── PrincipalShareExceeded  the caller holds its whole share of that quota
    └── CircuitOpenError         the route's breaker is open (or its probes are taken)

Both carry ``retry_after``: how long the caller should wait before trying again
(sent as ``RetryInfo``).
"""

from __future__ import annotations

from adapter.upstream.errors import UpstreamError

__all__ = ["CircuitOpenError", "LocalRateLimitExceeded", "PrincipalShareExceeded"]


class LocalRateLimitExceeded(UpstreamError):
    """The call would exceed the upstream's quota before its deadline."""

    reason = "UPSTREAM_QUOTA_EXHAUSTED"

    def __init__(
        self, *, upstream: str, route: str, retry_after: float, limit: int, window_seconds: float
    ) -> None:
        super().__init__(
            f"client-side quota of {limit} requests per {window_seconds:g}s is spent; "
            f"a slot frees in {retry_after:.3f}s, after the call's deadline",
            upstream=upstream,
            route=route,
        )
        self.retry_after = retry_after
        self.limit = limit
        self.window_seconds = window_seconds


class PrincipalShareExceeded(LocalRateLimitExceeded):
    """One caller (principal) holds its whole share of a credential's quota."""

    reason = "PRINCIPAL_QUOTA_EXHAUSTED"

    def __init__(
        self,
        *,
        upstream: str,
        route: str,
        retry_after: float,
        limit: int,
        window_seconds: float,
        principal: str,
        share: float,
    ) -> None:
        super().__init__(
            upstream=upstream,
            route=route,
            retry_after=retry_after,
            limit=limit,
            window_seconds=window_seconds,
        )
        self.args = (
            f"{principal} holds its share ({share:.0%}, {limit} requests per {window_seconds:g}s) "
            f"of the {upstream} quota; a slot frees in {retry_after:.3f}s",
        )
        self.principal = principal
        self.share = share


class CircuitOpenError(UpstreamError):
    """The route failed repeatedly; calls fail fast until the breaker half-opens."""

    reason = "UPSTREAM_CIRCUIT_OPEN"

    def __init__(self, *, upstream: str, route: str, retry_after: float) -> None:
        super().__init__(
            f"circuit open after repeated failures; next probe in {retry_after:.3f}s",
            upstream=upstream,
            route=route,
        )
        self.retry_after = retry_after
