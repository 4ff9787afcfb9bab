"""Builds each upstream's credentials and caller from configuration.

The one place that decides what stands between a handler and the network. The
caller stack, outermost first::

    ResponseCache          (cacheable reads only)
    CircuitBreakerCaller   (per route)
    RetryingCaller         (with its RetryBudget)
    QuotaRouter            (REST requests to one limiter, GraphQL ones to another)
    PrincipalQuotaShares   (each caller's share of the quota below, from the policy)
    UpstreamRateLimiter    (per upstream credential and quota)
    UpstreamClient         (credentials + one refresh on 401, deadline, HTTP)

One such stack is built per credential set (the upstream's ``auth`` and each of
its ``credential_sets``), and a :class:`~adapter.upstream.tenant_router.TenantRouter`
on top sends each call down the stack of the set the policy binds its caller to.

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
- A stack per credential set, router on top: quota, breakers and cache belong
  to a vendor account, so no tenant spends, trips or reads another's.
- Fair shares sit right above their limiter and count what it counts (every
  attempt), so a caller's share is a share of the same quota; a caller over
  its share is refused before it takes a slot the others could use.
- The limiter sits above the client's 401 refresh: the vendor authenticates
  before it counts, so the rejected attempt did not use quota and the re-sent one
  uses the slot already taken.
- Every layer is handed the same absolute deadline and never waits past it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

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
from adapter.resilience.fair_share import PrincipalQuotaShares
from adapter.security.policy import Policy
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.client import UpstreamClient
from adapter.upstream.credentials import CredentialProvider
from adapter.upstream.tenant_router import TenantRouter

#: The current policy (re-read on change), or None without caller authentication.
PolicySource = Callable[[], Policy | None]

__all__ = ["PolicySource", "build_callers", "build_credentials", "build_upstream_caller", "default_stack"]


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
    share_of: Callable[[str], float] | None = None,
    limiters: list[UpstreamRateLimiter] | None = None,
) -> UpstreamCaller:
    """One credential set's stack for upstream ``name``: the client wrapped in the
    resilience layers ``settings.resilience`` enables (see the module docstring).
    ``methods`` (the upstream's, from the catalog) supply the cacheable routes;
    ``share_of(principal)`` (the policy's ``max_share``) caps each caller's share
    of every quota."""
    resilience = settings.resilience
    caller: UpstreamCaller = UpstreamClient(
        name,
        settings,
        credentials=credentials,
        tracer_provider=tracer_provider,
        transport=transport,
        meter_provider=meter_provider,
    )
    caller = _rate_limited(caller, settings, meter_provider, share_of, limiters)
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
    client: UpstreamCaller,
    settings: UpstreamSettings,
    meter_provider: MeterProvider | None,
    share_of: Callable[[str], float] | None,
    registry: list[UpstreamRateLimiter] | None = None,
) -> UpstreamCaller:
    """The client behind one limiter per quota: REST (``resilience.rate_limit``) and
    GraphQL (``graphql.rate_limit``), each under the callers' shares of it; each limiter
    is also added to ``registry`` (replicas share the quotas by adjusting them)."""
    limiters: dict[str, UpstreamCaller] = {}
    for quota, limit in (
        ("rest", settings.resilience.rate_limit),
        (GRAPHQL_QUOTA, settings.graphql.rate_limit),
    ):
        if limit.enabled:
            limiter = UpstreamRateLimiter(
                client,
                limit=limit.requests_per_window,
                window=limit.window_seconds,
                learn_from_headers=limit.learn_from_headers,
                meter_provider=meter_provider,
                quota=quota,
            )
            if registry is not None:
                registry.append(limiter)
            limiters[quota] = (
                limiter
                if share_of is None
                else PrincipalQuotaShares(limiter, limiter=limiter, share_of=share_of)
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
    policy: PolicySource | None = None,
    limiters: list[UpstreamRateLimiter] | None = None,
) -> tuple[dict[str, CredentialProvider], dict[str, UpstreamCaller]]:
    """Credentials and one caller per configured upstream, built once and shared by
    the RPC handlers, backfill and the WebSocket streams. With a ``policy`` (caller
    authentication on) or credential sets configured, the caller is a
    :class:`TenantRouter` over one stack per credential set; ``credentials`` are the
    default set's (the WebSocket streams and backfill use the upstream's own account,
    see :func:`default_stack`)."""
    share_of = None if policy is None else _share_of(policy)
    credentials: dict[str, CredentialProvider] = {}
    callers: dict[str, UpstreamCaller] = {}
    for name, upstream in settings.upstreams.items():
        credentials[name] = build_credentials(name, upstream)

        def stack(cfg: UpstreamSettings, creds: CredentialProvider, name: str = name) -> UpstreamCaller:
            return build_upstream_caller(
                name,
                cfg,
                credentials=creds,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                methods=methods.get(name, ()),
                share_of=share_of,
                limiters=limiters,
            )

        default = stack(upstream, credentials[name])
        if policy is None and not upstream.credential_sets and not upstream.require_credential_set:
            callers[name] = default
            continue
        sets = {}
        for set_name, auth in upstream.credential_sets.items():
            cfg = upstream.model_copy(update={"auth": auth, "credential_sets": {}})
            sets[set_name] = stack(cfg, build_credentials(f"{name}/{set_name}", cfg))
        callers[name] = TenantRouter(
            default,
            sets,
            policy=policy or _no_policy,
            require_set=upstream.require_credential_set,
        )
    return credentials, callers


def default_stack(caller: UpstreamCaller) -> UpstreamCaller:
    """The upstream's own credential set: what runs outside any caller's request
    (WebSocket streams, backfill)."""
    return caller.inner if isinstance(caller, TenantRouter) else caller


def _share_of(policy: PolicySource) -> Callable[[str], float]:
    def share_of(principal: str) -> float:
        current = policy()
        return 1.0 if current is None else current.max_share(principal)

    return share_of


def _no_policy() -> Policy | None:
    return None
