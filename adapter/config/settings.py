"""Typed configuration, read once at start-up.

Sources, highest priority first: keyword arguments, environment variables prefixed
``MESH_`` (nested keys joined by ``__``), then the TOML file named by
``MESH_CONFIG_FILE``. Example::

    MESH_UPSTREAMS__OPENFRAME__BASE_URL=https://api.openframe.io
    MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY=...
    MESH_UPSTREAMS__OPENFRAME__AUTH__HEADER=X-API-Key
    MESH_UPSTREAMS__OPENFRAME__AUTH__SCHEME=
    MESH_UPSTREAMS__OPENFRAME__PAGINATION__STYLE=cursor
    MESH_UPSTREAMS__OCTOSPINE__AUTH__TYPE=oauth2_client_credentials
    MESH_UPSTREAMS__OCTOSPINE__RESILIENCE__RETRY__MAX_ATTEMPTS=4

Every key is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from adapter.event_loop import EventLoopChoice
from adapter.telemetry.repeated_lines import DEFAULT_INTERVAL

# Re-exported: the auth, resilience, events... models live in their own modules.
from .auth import ApiKeyAuth as ApiKeyAuth
from .auth import JwtAuth as JwtAuth
from .auth import OAuth2AuthorizationCodeAuth as OAuth2AuthorizationCodeAuth
from .auth import OAuth2ClientCredentialsAuth as OAuth2ClientCredentialsAuth
from .auth import UpstreamAuth as UpstreamAuth
from .base_model import FrozenModel as _Frozen
from .base_url import without_duplicated_prefix
from .coordination import CoordinationSettings as CoordinationSettings
from .events import EventsSettings as EventsSettings
from .events import KafkaSettings as KafkaSettings
from .events import SpoolSettings as SpoolSettings
from .events import WebhookSettings as WebhookSettings
from .events import WebhookSourceSettings as WebhookSourceSettings
from .events import WebSocketSourceSettings as WebSocketSourceSettings
from .graphql import GraphQLSettings as GraphQLSettings
from .resilience import ResilienceSettings as ResilienceSettings
from .security import SecuritySettings as SecuritySettings
from .security import TlsSettings as TlsSettings

logger = logging.getLogger(__name__)

ENV_PREFIX = "MESH_"
_AUTH_TAGS = frozenset({"api_key", "oauth2_client_credentials", "oauth2_authorization_code", "jwt"})
CONFIG_FILE_ENV = "MESH_CONFIG_FILE"


class PaginationSettings(_Frozen):
    """How an upstream pages; overrides the style declared in the protos."""

    #: ``None`` keeps each method's declared style; otherwise forces one for the upstream.
    style: Literal["page", "cursor", "offset"] | None = None
    page_param: str = "page"
    per_page_param: str = "per_page"
    cursor_param: str = "cursor"
    limit_param: str = "limit"
    skip_param: str = "skip"
    #: Page size used when the caller sends ``page_size = 0``.
    default_page_size: int = Field(default=50, ge=1)
    #: Larger ``page_size`` values are clamped to this (AIP-158).
    max_page_size: int = Field(default=100, ge=1)
    #: Dotted path of the total count in the list body (empty: not reported).
    total_field: str = "meta.total"
    #: Dotted path of the next cursor in the list body (cursor style).
    next_cursor_field: str = "meta.next_cursor"


#: Shortest page-token key accepted (HMAC-SHA256 wants 32 bytes of entropy).
MIN_PAGE_TOKEN_KEY_CHARS = 32


class PageTokenSettings(_Frozen):
    """Keys signing page tokens (adapter/transcoding/page_tokens.py). Every replica
    needs the same keys; without any, a random key per process signs."""

    #: Inline keys, the first signs, every one verifies.
    keys: list[SecretStr] = Field(default_factory=list)
    #: Or a file with one key per line (newest first), re-read when it changes.
    keys_file: Path | None = None
    reload_interval_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> PageTokenSettings:
        if self.keys and self.keys_file is not None:
            raise ValueError("set keys or keys_file, not both")
        if any(len(k.get_secret_value()) < MIN_PAGE_TOKEN_KEY_CHARS for k in self.keys):
            raise ValueError(f"each key needs at least {MIN_PAGE_TOKEN_KEY_CHARS} characters")
        return self


#: Credential set names: they appear in policies, metrics and environment variables.
_SET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class UpstreamSettings(_Frozen):
    """One vendor API: where it is, how to authenticate, how to talk to it."""

    base_url: HttpUrl
    auth: UpstreamAuth
    #: Bound of an upstream call when the gRPC caller sets no deadline.
    default_timeout_seconds: float = Field(default=30.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Larger answers are refused (RESOURCE_EXHAUSTED) instead of buffered.
    max_response_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: Requests whose URL (path + query) or JSON body would be larger are
    #: INVALID_ARGUMENT naming the field, and not sent.
    max_url_bytes: int = Field(default=8 * 1024, ge=256)
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_connections: int = Field(default=100, ge=1)
    max_keepalive_connections: int = Field(default=50, ge=0)
    # h1 only: while the one exchange in flight waits for its answer, the event loop polls
    # instead of sleeping for at most this long (adapter/upstream/answer_spin.py); 0 = off.
    answer_spin_microseconds: int = Field(default=400, ge=0, le=10_000)
    #: ``h1`` (lean HTTP/1.1 on asyncio with httptools' parser: ~150 µs of CPU a call
    #: cheaper than aiohttp inside grpc.aio), ``aiohttp`` (aiohttp's client directly) or
    #: ``httpx`` (httpx's own pool, httpcore). See docs/benchmarks.md.
    transport: Literal["aiohttp", "httpx", "h1"] = "h1"
    verify_tls: bool = True
    #: Extra CA bundle (PEM) for upstreams behind a private CA.
    ca_bundle: Path | None = None
    #: Redirects are followed only to the upstream's own host, at most this many.
    max_redirects: int = Field(default=3, ge=0)
    pagination: PaginationSettings = PaginationSettings()
    #: Retries, retry budget, rate limit, circuit breaker, cache (docs/resilience.md).
    resilience: ResilienceSettings = ResilienceSettings()
    #: The GraphQL endpoint and its own quota (RPCs bound to GraphQL operations).
    graphql: GraphQLSettings = GraphQLSettings()
    #: Per-tenant vendor credentials: name -> credentials shaped like ``auth``. The
    #: policy's ``[[tenants]]`` bind principals to a set; each set has its own rate
    #: limiter, fair shares, circuit breakers and cache (docs/security.md).
    credential_sets: dict[str, UpstreamAuth] = Field(default_factory=dict)
    #: Refuse (PERMISSION_DENIED) callers the policy binds to no credential set of
    #: this upstream, instead of sending them with ``auth`` (the default set).
    require_credential_set: bool = False

    @field_validator("credential_sets")
    @classmethod
    def _set_names(cls, sets: dict[str, UpstreamAuth]) -> dict[str, UpstreamAuth]:
        bad = sorted(name for name in sets if not _SET_NAME.fullmatch(name))
        if bad:
            raise ValueError(f"credential set names must match {_SET_NAME.pattern}: {bad}")
        return sets


class GrpcSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=0, le=65535)
    #: In-flight calls get this long to finish after SIGTERM.
    grace_period_seconds: float = Field(default=10.0, ge=0)
    #: After SIGTERM, health reads NOT_SERVING for this long while new calls are
    #: still served, so clients that watch health (round_robin with healthCheckConfig)
    #: move to other replicas before this one stops accepting calls.
    drain_seconds: float = Field(default=1.0, ge=0, le=300)
    #: Serve gRPC reflection (needs the ``meshadapter.reflection.read`` permission
    #: under a policy). Unset: on when ``host`` is loopback, off otherwise.
    reflection: bool | None = None
    #: Share the port with the other workers of this host (``SO_REUSEPORT``; the kernel
    #: spreads connections). Set by the ``workers`` supervisor for its workers.
    reuse_port: bool = False
    max_receive_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    #: Accept requests a client compressed (gzip, deflate). Off: such a call ends
    #: UNIMPLEMENTED before its message is read. gRPC core inflates a whole message
    #: before it checks ``max_receive_message_bytes``: ~1 MB of gzip from any caller,
    #: before authorization, costs a second of CPU per 200 MB, held the event loop
    #: as long, and as much memory (adapter/server/grpc_options.py). On only behind
    #: callers you trust.
    accept_compressed_requests: bool = False
    #: Calls accepted by HTTP/2 but not yet picked up by the server loop; beyond
    #: this gRPC core drops new calls as CANCELLED without details
    #: (adapter/server/grpc_options.py). Below it a waiting call keeps its deadline.
    max_pending_calls: int = Field(default=10_000, ge=1)
    #: Calls gRPC core may hand the server before its loop asks for the next one
    #: (pending ``grpc_server_request_call``s). grpc.aio keeps one, so on a busy core
    #: each call waits for its poller thread to run: 32 cut a call's CPU by ~40% at
    #: 16 in flight (adapter/server/accept_ahead.py). 1: grpc.aio's own behaviour.
    accept_ahead: int = Field(default=32, ge=1, le=4096)
    #: After a call's reply, when it came alone and no other call is in flight, the
    #: event loop polls (giving the core to grpc's threads at each poll) instead of
    #: sleeping for at most this long, while the next call is due: at one call in
    #: flight the loop's sleep cost the next call ~0.2 ms on this project's machines
    #: (adapter/server/reply_spin.py). CPU while idle, at most this long a reply; not
    #: after overlapping calls nor gaps longer than this. 0 = off; grpcio front only.
    reply_spin_microseconds: int = Field(default=1000, ge=0, le=10_000)
    #: What answers the port: ``grpcio`` (grpc.aio's server) or ``envoy``: Envoy
    #: (through pyvoy, the ``envoy`` extra) answers it, the upstream-backed unary
    #: calls in an interpreter embedded in Envoy, health, reflection and the event
    #: stream routed to grpc.aio on a private Unix socket: ~7% less CPU a call
    #: (docs/envoy-front.md). TLS and mutual TLS end at Envoy.
    front: Literal["grpcio", "envoy"] = "grpcio"
    #: Listen on this Unix socket instead of ``host:port`` (the envoy front's inner
    #: grpc.aio server; set by the front, not by hand).
    unix_socket: Path | None = None

    @property
    def behind_envoy(self) -> bool:
        """This is the envoy front's inner grpc.aio server: its only client is Envoy."""
        return self.unix_socket is not None and self.front == "envoy"


class TelemetrySettings(_Frozen):
    service_name: str = "mesh-adapter"
    #: Export spans over OTLP/gRPC. Defaults to on when the standard
    #: ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
    otlp_enabled: bool = Field(default_factory=lambda: bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")))
    #: The operator port: Prometheus ``/metrics``, ``/healthz`` and ``/readyz``.
    ops_enabled: bool = True
    ops_host: str = "127.0.0.1"
    ops_port: int = Field(default=9464, ge=0, le=65535)
    #: Serve the metrics on ``/metrics`` (off: the port still answers the probes).
    prometheus_enabled: bool = True
    #: At shutdown, spans and metrics get this long to reach the OTLP collector;
    #: what is not exported by then is dropped, with a warning (adapter/telemetry/shutdown.py).
    flush_timeout_seconds: float = Field(default=5.0, ge=0, le=60)
    #: The span export thread sleeps this long after every 32 spans it encodes (for at
    #: most 20 ms an export), so the event loop sharing its core is not kept waiting for
    #: the GIL while a batch of 512 is encoded (adapter/telemetry/export_pauses.py); 0: off.
    export_pause_microseconds: int = Field(default=100, ge=0, le=5000)
    #: A failed call's log line: the first of each method and status code at once, then
    #: at most one per this long, saying how many like it were not logged (0: every one;
    #: at DEBUG level, every one too). Each failure still counts in the metrics.
    failure_log_interval_seconds: float = Field(default=DEFAULT_INTERVAL, ge=0, le=3600)


class DescriptorSettings(_Frozen):
    """Protos beyond the generated package: a vendor added by configuration."""

    #: Files of ``FileDescriptorSet``s (``protoc --include_imports
    #: --descriptor_set_out=...`` or ``buf build -o``); their services, events,
    #: streams and webhooks are served like the built-in ones.
    descriptor_sets: list[Path] = Field(default_factory=list)


class Settings(BaseSettings):
    """Everything the adapter reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: ``auto``: text on a terminal, JSON lines otherwise (with trace and span ids).
    log_format: Literal["auto", "text", "json"] = "auto"
    #: A supervised background task that dies: ``restart`` it after a backoff (its
    #: health NOT_SERVING meanwhile) or ``exit`` the process non-zero.
    on_task_death: Literal["restart", "exit"] = "restart"
    #: ``batch``: every thread of the process but the event loop's runs as
    #: ``SCHED_BATCH``, so waking one (grpc's poller, Envoy's worker, the span
    #: exporter) does not preempt the loop on its core (adapter/helper_threads.py);
    #: ``normal``: the kernel's default for all.
    helper_threads: Literal["batch", "normal"] = "batch"
    #: The loop ``python -m adapter`` serves on: ``uvloop`` (libuv, in C; less CPU a
    #: call, adapter/event_loop.py) or ``asyncio``'s own.
    event_loop: EventLoopChoice = "uvloop"
    #: Adapter processes on this host under one supervisor, sharing the gRPC and webhook
    #: ports (``SO_REUSEPORT``); ``0``: one per core. More than one needs
    #: ``events.coordination.enabled`` (or events off) and fixed ports (docs/scaling.md).
    #: ``auto``: one per core when this configuration can share, else one (logged why).
    workers: int | Literal["auto"] = "auto"
    grpc: GrpcSettings = GrpcSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    #: Keyed by the ``upstream`` name the protos' service options use.
    upstreams: dict[str, UpstreamSettings] = Field(default_factory=dict)
    events: EventsSettings = EventsSettings()
    descriptors: DescriptorSettings = DescriptorSettings()
    page_tokens: PageTokenSettings = PageTokenSettings()
    #: TLS, caller identity, authorization and limits of the gRPC port (docs/security.md).
    security: SecuritySettings = SecuritySettings()

    @field_validator("workers", mode="before")
    @classmethod
    def _workers_count_or_auto(cls, value: object) -> object:
        """One message for a bad value (the union would report each member's error)."""
        if value == "auto":
            return value
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 256:
            raise ValueError("expected 'auto' or a number of processes from 0 (one per core) to 256")
        return value

    @field_validator("upstreams", mode="after")
    @classmethod
    def _base_urls_without_api_prefix(
        cls, upstreams: dict[str, UpstreamSettings]
    ) -> dict[str, UpstreamSettings]:
        """``https://api.openframe.io/v1`` (the documented form) -> ``https://api.openframe.io``
        when the protos' paths start with ``/v1`` themselves (see ``base_url.py``)."""
        # Imported here: the protos are read only once a configuration names upstreams.
        from adapter.descriptors.loader import rest_paths_by_upstream

        paths = rest_paths_by_upstream()
        out: dict[str, UpstreamSettings] = {}
        for name, upstream in upstreams.items():
            given = str(upstream.base_url)
            fixed = without_duplicated_prefix(given, paths.get(name, ()))
            if fixed != given:
                logger.info(
                    "upstreams.%s.base_url (%sUPSTREAMS__%s__BASE_URL) is %s; its paths already start "
                    "with what it ends with, so %s is used",
                    name, ENV_PREFIX, name.upper(), given, fixed,
                )  # fmt: skip
                upstream = upstream.model_copy(update={"base_url": HttpUrl(fixed)})
            out[name] = upstream
        return out

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def _is_auth_tag(where: tuple[int | str, ...], i: int) -> bool:
    """``auth.<type>`` or ``credential_sets.<name>.<type>``: the chosen union member."""
    if where[i] not in _AUTH_TAGS:
        return False
    return (i >= 1 and where[i - 1] == "auth") or (i >= 2 and where[i - 2] == "credential_sets")


class ConfigError(Exception):
    """Configuration is missing or invalid; the message names each bad key."""


def _with_variable(message: str) -> str:
    """pydantic-settings' ``error parsing value for field "events" from source
    "EnvSettingsSource"`` names only the top-level field; this names the variables
    below it whose value looks like JSON and is not."""
    field = re.search(r'field "([^"]+)"', message)
    if field is None or "EnvSettingsSource" not in message:
        return message
    prefix = env_variable(field.group(1))
    culprits = []
    for name, value in os.environ.items():
        if name.upper() != prefix and not name.upper().startswith(prefix + "__"):
            continue
        try:
            json.loads(value)
        except ValueError:
            if value.strip()[:1] in ("[", "{"):
                culprits.append(name)
    where = ", ".join(sorted(culprits)) or f"{prefix} or a {prefix}__... variable"
    return f"{where}: not valid JSON (a table or list in a variable is JSON)"


def env_variable(dotted: str) -> str:
    """The environment variable that sets key ``dotted`` (``grpc.port`` -> ``MESH_GRPC__PORT``)."""
    return ENV_PREFIX + "__".join(part.upper() for part in dotted.split("."))


def load_settings(**overrides: object) -> Settings:
    """Reads and validates the settings, turning pydantic's errors into one
    message that names each bad key as an environment variable would."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"{CONFIG_FILE_ENV}={config_file}: no such file")
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE_ENV}={config_file}: not valid TOML: {exc}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"{CONFIG_FILE_ENV}={config_file}: unreadable: {exc}") from None
    except SettingsError as exc:  # a variable holding a table or list that is not JSON
        raise ConfigError(f"invalid configuration: {_with_variable(str(exc))}") from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            # pydantic puts the chosen member of a tagged union (``auth.type``) into the
            # location; it is not part of the key a user sets.
            where = err["loc"]
            loc = [str(p) for i, p in enumerate(where) if not _is_auth_tag(where, i)]
            dotted = ".".join(loc)
            env_name = ENV_PREFIX + "__".join(part.upper() for part in loc)
            lines.append(f"  {dotted} ({env_name}): {err['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap and not os.environ.get(f"{ENV_PREFIX}EVENTS__KAFKA__BOOTSTRAP_SERVERS"):
        # The ecosystem's usual variable, honoured when the prefixed one is not set.
        kafka = settings.events.kafka.model_copy(update={"bootstrap_servers": bootstrap})
        events = settings.events.model_copy(update={"kafka": kafka})
        settings = settings.model_copy(update={"events": events})
    return settings
