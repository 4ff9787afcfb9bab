"""Builds each upstream's credentials and caller from configuration.

The one place that decides what stands between a handler and the network. The
caller stack, outermost first::

    ResponseCache          (cacheable reads only)
    CircuitBreakerCaller   (per route)
    RetryingCaller         (with its RetryBudget)
    QuotaRouter            (REST requests to one limiter, GraphQL ones to another)
    UpstreamRateLimiter    (per upstream credential and quota)
    UpstreamClient         (credentials + one refresh on 401, deadline, HTTP)

Why this order:

- The cache is outermost so a hit costs nothing below it: no quota, no retry
  budget, no breaker probe.
- The breaker judges whole calls, after retries: an attempt a retry repaired is
  not a failure, and while the breaker is open a call fails before it spends
  retry budget or quota.
- Retries sit above the rate limiter so every attempt, retries included, takes a
  slot: the vendor counts each request, and a retry waits for quota like any
  other request (a 429's ``Retry-After`` pauses the limiter for everyone too).
- The vendor counts REST requests and GraphQL queries against separate quotas
  (OCTOSPINE: 1000 and 500 a minute), so each has its limiter over the same client.
- The limiter sits above the client's 401 refresh: the vendor authenticates
  before it counts, so the rejected attempt did not use quota and the re-sent one
  uses the slot already taken.
- Every layer is handed the same absolute deadline and never waits past it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from adapter.auth.from_settings import credentials_from_settings
from adapter.config.settings import Settings, UpstreamSettings
from adapter.descriptors.method_spec import MethodSpec
from adapter.graphql.transcoder import GRAPHQL_QUOTA
from adapter.resilience import (
    CircuitBreakerCaller,
    QuotaRouter,
    ResponseCache,
    RetryBudget,
    RetryingCaller,
    RetryPolicy,
    UpstreamRateLimiter,
)
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.client import UpstreamClient
from adapter.upstream.credentials import CredentialProvider

__all__ = ["build_callers", "build_credentials", "build_upstream_caller"]


def build_credentials(name: str, settings: UpstreamSettings) -> CredentialProvider:
    """The credential provider of upstream ``name`` (shared by REST and WebSocket)."""
    return credentials_from_settings(name, settings)


def _cache_ttls(name: str, settings: UpstreamSettings, methods: Iterable[MethodSpec]) -> dict[str, float]:
    cap = settings.resilience.cache.max_ttl_seconds
    ttls: dict[str, float] = {}
    for spec in methods:
        if spec.upstream == name and spec.cache_ttl_seconds > 0 and spec.is_read:
            ttls[spec.route] = (
                float(spec.cache_ttl_seconds) if cap is None else min(cap, spec.cache_ttl_seconds)
            )
    return ttls


def build_upstream_caller(
    name: str,
    settings: UpstreamSettings,
    *,
    credentials: CredentialProvider,
    tracer_provider: TracerProvider | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    meter_provider: MeterProvider | None = None,
    methods: Iterable[MethodSpec] = (),
) -> UpstreamCaller:
    """The caller handlers use for upstream ``name``: the client wrapped in the
    resilience layers ``settings.resilience`` enables (see the module docstring).
    ``methods`` (the upstream's, from the catalog) supply the cacheable routes."""
    resilience = settings.resilience
    caller: UpstreamCaller = UpstreamClient(
        name,
        settings,
        credentials=credentials,
        tracer_provider=tracer_provider,
        transport=transport,
        meter_provider=meter_provider,
    )
    caller = _rate_limited(caller, settings, meter_provider)
    retry, budget = resilience.retry, resilience.retry_budget
    if retry.max_attempts > 1:
        caller = RetryingCaller(
            caller,
            policy=RetryPolicy(
                max_attempts=retry.max_attempts,
                initial_backoff=retry.initial_backoff_seconds,
                max_backoff=retry.max_backoff_seconds,
                multiplier=retry.multiplier,
                retryable_statuses=retry.retryable_statuses,
            ),
            budget=RetryBudget(
                ratio=budget.ratio,
                min_retries_per_second=budget.min_retries_per_second,
                window_seconds=budget.window_seconds,
            ),
            meter_provider=meter_provider,
        )
    breaker = resilience.circuit_breaker
    if breaker.enabled:
        caller = CircuitBreakerCaller(
            caller,
            failure_threshold=breaker.failure_threshold,
            open_seconds=breaker.open_seconds,
            half_open_probes=breaker.half_open_probes,
            meter_provider=meter_provider,
        )
    cache = resilience.cache
    ttls = _cache_ttls(name, settings, methods) if cache.enabled else {}
    if ttls:
        caller = ResponseCache(
            caller,
            ttls=ttls,
            max_entries=cache.max_entries,
            max_bytes=cache.max_bytes,
            meter_provider=meter_provider,
            whole_upstream_paths=[settings.graphql.path],
        )
    return caller


def _rate_limited(
    client: UpstreamCaller, settings: UpstreamSettings, meter_provider: MeterProvider | None
) -> UpstreamCaller:
    """The client behind one limiter per quota: REST (``resilience.rate_limit``) and
    GraphQL (``graphql.rate_limit``)."""
    limiters: dict[str, UpstreamCaller] = {}
    for quota, limit in (
        ("rest", settings.resilience.rate_limit),
        (GRAPHQL_QUOTA, settings.graphql.rate_limit),
    ):
        if limit.enabled:
            limiters[quota] = UpstreamRateLimiter(
                client,
                limit=limit.requests_per_window,
                window=limit.window_seconds,
                learn_from_headers=limit.learn_from_headers,
                meter_provider=meter_provider,
                quota=quota,
            )
    if not limiters:
        return client
    return QuotaRouter(limiters.get("rest", client), {GRAPHQL_QUOTA: limiters.get(GRAPHQL_QUOTA, client)})


def build_callers(
    settings: Settings,
    methods: Mapping[str, Iterable[MethodSpec]],
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> tuple[dict[str, CredentialProvider], dict[str, UpstreamCaller]]:
    """Credentials and one caller stack per configured upstream, built once and
    shared by the RPC handlers, backfill and the WebSocket streams."""
    credentials: dict[str, CredentialProvider] = {}
    callers: dict[str, UpstreamCaller] = {}
    for name, upstream in settings.upstreams.items():
        credentials[name] = build_credentials(name, upstream)
        callers[name] = build_upstream_caller(
            name,
            upstream,
            credentials=credentials[name],
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            methods=methods.get(name, ()),
        )
    return credentials, callers
