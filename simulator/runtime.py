"""What every request handler of one vendor's app can reach (stored on the aiohttp app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from simulator.config import ProfileSettings, SimulatorConfig, Vendor
from simulator.events import EventHub
from simulator.faults import FaultSet
from simulator.idempotency import IdempotencyCache
from simulator.ratelimit import FixedWindowRateLimiter
from simulator.recording import RequestLog
from simulator.tokens import TokenStore

ADMIN_PREFIX = "/_sim/"


@dataclass
class VendorRuntime:
    """One vendor's cross-cutting state: profile, request log, faults, limits, tokens, events."""

    vendor: Vendor
    config: SimulatorConfig
    settings: ProfileSettings
    log: RequestLog
    faults: FaultSet
    limiter: FixedWindowRateLimiter
    tokens: TokenStore
    idempotency: IdempotencyCache
    hub: EventHub
    public_routes: frozenset[str]
    websocket_routes: frozenset[str]
    #: Routes counted against a quota of their own (OCTOSPINE's `/graphql`).
    route_limiters: dict[str, FixedWindowRateLimiter] = field(default_factory=dict)

    def limiter_for(self, route: str) -> FixedWindowRateLimiter:
        """The quota a request of `route` counts against."""
        return self.route_limiters.get(route, self.limiter)

    @property
    def api_key(self) -> str:
        """The vendor's API key."""
        return self.config.api_key(self.vendor)

    @property
    def api_keys(self) -> dict[str, str]:
        """Every key the vendor accepts, by credential label (tenants' keys included)."""
        return self.config.api_keys(self.vendor)


RUNTIME = web.AppKey("runtime", VendorRuntime)


def is_admin(request: web.Request) -> bool:
    """Whether the request is for the simulator's own admin API (never recorded or faulted)."""
    return request.path.startswith(ADMIN_PREFIX)


def route_of(request: web.Request) -> str:
    """The matched route template, e.g. ``/v1/alerts/{alert_id}`` (``""`` when none)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""
