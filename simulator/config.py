"""Configuration of the simulator: ports, credentials, profiles and timings.

A *profile* is a named preset of the wire switches real deployments drift on (auth header,
paging style, rate limit). Any switch can also be set on its own, overriding the preset::

    SimulatorConfig(profile="documented", pagination="cursor")
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, get_args

Vendor = Literal["openframe", "octospine"]
#: ``full``: ``{type, [action], id, timestamp, data}`` frames and ``{id, event, timestamp,
#: data}`` webhook bodies; ``documented``: the guides' ``{type, data}`` / ``{event, data}``.
EnvelopeShape = Literal["full", "documented"]
AuthStyle = Literal["bearer", "x-api-key"]
PaginationStyle = Literal["page", "cursor", "offset"]

VENDORS: tuple[Vendor, ...] = get_args(Vendor)
AUTH_STYLES: tuple[AuthStyle, ...] = get_args(AuthStyle)
PAGINATION_STYLES: tuple[PaginationStyle, ...] = get_args(PaginationStyle)
ENVELOPE_SHAPES: tuple[EnvelopeShape, ...] = get_args(EnvelopeShape)


@dataclass(frozen=True, kw_only=True)
class ProfileSettings:
    """The wire switches a profile sets.

    `rate_limit_per_minute` is the quota per credential and window (`None`: unlimited);
    `rate_limit_headers` adds `X-RateLimit-Limit-Minute` / `X-RateLimit-Remaining-Minute`.
    """

    auth_style: AuthStyle
    pagination: PaginationStyle
    rate_limit_per_minute: int | None
    rate_limit_headers: bool


PROFILES: dict[str, ProfileSettings] = {
    # What the vendors' guides document.
    "documented": ProfileSettings(
        auth_style="bearer",
        pagination="page",
        rate_limit_per_minute=1000,
        rate_limit_headers=False,
    ),
    # What deployments of such APIs are seen to do instead.
    "drifted": ProfileSettings(
        auth_style="x-api-key",
        pagination="cursor",
        rate_limit_per_minute=100,
        rate_limit_headers=True,
    ),
}


@dataclass(frozen=True, kw_only=True)
class WebhookTarget:
    """A receiver of outgoing OCTOSPINE webhooks configured at start (no REST call needed).

    Example: ``WebhookTarget(url="http://127.0.0.1:9000/webhooks/octospine",
    secret="whsec", events=("task.completed", "alert.new"))``.
    """

    url: str
    secret: str
    events: tuple[str, ...] = ("task.completed", "automation.triggered", "alert.new")
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> WebhookTarget:
        """Parses ``url|secret|event,event`` (events optional), the CLI/env form."""
        parts = spec.split("|")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError(f"webhook target must be 'url|secret[|event,event]', got {spec!r}")
        if len(parts) == 3 and parts[2]:
            events = tuple(e.strip() for e in parts[2].split(",") if e.strip())
            return cls(url=parts[0], secret=parts[1], events=events)
        return cls(url=parts[0], secret=parts[1])


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """Everything the simulator needs, read once at the edge (CLI or test).

    Profile switches left at `None` take the value of `profile`. Port 0 binds an ephemeral port.
    """

    profile: str = "documented"
    # Per-vendor presets, overriding `profile` for that vendor (e.g. only OCTOSPINE drifted).
    openframe_profile: str | None = None
    octospine_profile: str | None = None
    auth_style: AuthStyle | None = None
    pagination: PaginationStyle | None = None
    rate_limit_per_minute: int | None = None
    rate_limit_headers: bool | None = None
    rate_limit_window_s: float = 60.0
    # OCTOSPINE's GraphQL endpoint has its own quota (the guide: 500 queries/minute; 0 or
    # None = unlimited) and supports persisted queries unless switched off.
    graphql_rate_limit_per_minute: int | None = 500
    graphql_persisted_queries: bool = True

    host: str = "127.0.0.1"
    openframe_port: int = 8081
    octospine_port: int = 8082
    openframe_api_key: str = "openframe-dev-key"
    octospine_api_key: str = "octospine-dev-key"
    # Further accounts (an MSP's tenants): (label, key) pairs. A request with one of these
    # keys is recorded and rate limited as credential `api_key:<label>`, apart from the rest.
    openframe_tenant_api_keys: tuple[tuple[str, str], ...] = ()
    octospine_tenant_api_keys: tuple[tuple[str, str], ...] = ()

    # OAuth2 clients (OpenFrame: authorization code + PKCE; OCTOSPINE: client credentials).
    # `openframe_refresh_tokens=False` is a vendor that grants no refresh token.
    openframe_client_id: str = "openframe-client"
    openframe_client_secret: str = "openframe-client-secret"
    octospine_client_id: str = "octospine-client"
    octospine_client_secret: str = "octospine-client-secret"
    token_ttl_s: float = 3600.0
    openframe_refresh_tokens: bool = True
    auth_code_ttl_s: float = 60.0

    # Deterministic seed data; timestamps count back from `seed_epoch` (default: start time).
    seed: int = 42
    seed_epoch: datetime | None = None

    # Background task runs: pending -> running (progress steps) -> completed.
    task_duration_s: float = 1.5
    task_progress_steps: int = 4

    # Outgoing webhooks.
    webhook_targets: tuple[WebhookTarget, ...] = ()
    webhook_backoff_base_s: float = 1.0
    webhook_max_attempts: int = 8
    webhook_timeout_s: float = 5.0
    allow_external_webhooks: bool = False
    #: Body of outgoing webhooks (the delivery id stays in `x-octospine-delivery`).
    webhook_body_shape: EnvelopeShape = "full"

    # WebSocket.
    event_ring_size: int = 1000
    ws_heartbeat_s: float | None = None
    #: Event frames of both streams.
    ws_event_shape: EnvelopeShape = "full"

    shutdown_timeout_s: float = 1.0

    def profile_of(self, vendor: Vendor) -> str:
        """The profile name in force for `vendor`."""
        chosen = self.openframe_profile if vendor == "openframe" else self.octospine_profile
        return chosen or self.profile

    def settings(self, vendor: Vendor = "openframe") -> ProfileSettings:
        """The effective wire switches of `vendor`: its profile's preset overlaid with the
        explicit switches (which apply to both vendors)."""
        name = self.profile_of(vendor)
        try:
            base = PROFILES[name]
        except KeyError:
            known = ", ".join(sorted(PROFILES))
            raise ValueError(f"unknown profile {name!r} (known: {known})") from None
        resolved = replace(
            base,
            auth_style=self.auth_style or base.auth_style,
            pagination=self.pagination or base.pagination,
            rate_limit_headers=(
                base.rate_limit_headers if self.rate_limit_headers is None else self.rate_limit_headers
            ),
        )
        if self.rate_limit_per_minute is not None:
            limit = self.rate_limit_per_minute
            resolved = replace(resolved, rate_limit_per_minute=limit if limit > 0 else None)
        return resolved

    def api_key(self, vendor: Vendor) -> str:
        """The API key the vendor accepts."""
        return self.openframe_api_key if vendor == "openframe" else self.octospine_api_key

    def api_keys(self, vendor: Vendor) -> dict[str, str]:
        """Every API key the vendor accepts, by the credential label it is recorded as."""
        tenants = self.openframe_tenant_api_keys if vendor == "openframe" else self.octospine_tenant_api_keys
        return {"api_key": self.api_key(vendor), **{f"api_key:{label}": key for label, key in tenants}}

    def oauth_client(self, vendor: Vendor) -> tuple[str, str]:
        """The (client_id, client_secret) of the vendor's OAuth2 client."""
        if vendor == "openframe":
            return self.openframe_client_id, self.openframe_client_secret
        return self.octospine_client_id, self.octospine_client_secret

    def port(self, vendor: Vendor) -> int:
        """The configured port of the vendor (0: ephemeral)."""
        return self.openframe_port if vendor == "openframe" else self.octospine_port
