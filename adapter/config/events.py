"""``events``: vendor WebSocket streams and webhooks fanned out onto Kafka, through the
spool (see docs/events.md and docs/delivery.md)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from .base_model import FrozenModel as _Frozen
from .coordination import CoordinationSettings
from .security import TlsSettings

__all__ = [
    "EventsSettings",
    "KafkaSettings",
    "SpoolSettings",
    "WebSocketSourceSettings",
    "WebhookSettings",
    "WebhookSourceSettings",
]


class KafkaSettings(_Frozen):
    """Where events go. ``KAFKA_BOOTSTRAP_SERVERS`` in the environment also sets
    ``bootstrap_servers`` (and tells ``make run`` not to start a local broker)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "mesh-adapter"
    #: Bound of one delivery attempt (aiokafka's request timeout).
    request_timeout_seconds: float = Field(default=15.0, gt=0)
    #: Bound of producer start/stop, which can hang when the broker is gone.
    lifecycle_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Bound of a whole batch delivery (above the request timeout: it may retry inside).
    delivery_timeout_seconds: float = Field(default=30.0, gt=0)
    #: How long records wait, from the last hand-over, behind a batch in flight for a fuller
    #: batch before they go out as a partial one (the drainer's linger; each batch is then
    #: sent at once). Behind two or more unsettled batches, they wait for the oldest to settle.
    linger_ms: int = Field(default=2, ge=0)
    #: Records the drainer reads from the spool and hands to the producer at once.
    batch_size: int = Field(default=500, ge=1)
    #: Batches handed to the producer and not yet acknowledged, at most (1: wait for
    #: each batch's acknowledgements before reading the next; docs/delivery.md).
    max_in_flight_batches: int = Field(default=4, ge=1, le=64)
    #: On shutdown, how long the drainer keeps emptying the spool into Kafka.
    stop_grace_seconds: float = Field(default=5.0, ge=0)
    #: How every Kafka client of the adapter (producer, admin, Subscribe's and the
    #: replicas' consumers) connects: ``PLAINTEXT``, ``SSL`` (TLS, with a client
    #: certificate when ``ssl_certfile`` is set), ``SASL_PLAINTEXT`` or ``SASL_SSL``.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    #: CA bundle (PEM) the brokers' certificates must chain to; unset: the system's CAs.
    ssl_cafile: Path | None = None
    #: Client certificate chain and key (PEM) for brokers that want mutual TLS.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr | None = None
    #: Or the password in a file (read at start, then followed: docs/configuration.md).
    sasl_password_file: Path | None = None
    #: OAUTHBEARER: tokens from this OAuth2 token endpoint (client credentials grant),
    #: as client ``sasl_oauth_client_id`` with its secret (inline or in a followed file).
    sasl_oauth_token_url: str = ""
    sasl_oauth_client_id: str = ""
    sasl_oauth_client_secret: SecretStr | None = None
    sasl_oauth_client_secret_file: Path | None = None
    sasl_oauth_scope: str = ""

    @model_validator(mode="after")
    def _security(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism == "OAUTHBEARER":
            oauth = "sasl_mechanism OAUTHBEARER needs"
            if not self.sasl_oauth_token_url or not self.sasl_oauth_client_id:
                raise ValueError(f"{oauth} sasl_oauth_token_url and sasl_oauth_client_id")
            if (self.sasl_oauth_client_secret is None) == (self.sasl_oauth_client_secret_file is None):
                raise ValueError(f"{oauth} sasl_oauth_client_secret or sasl_oauth_client_secret_file")
            if not _secret_may_travel_to(self.sasl_oauth_token_url):
                raise ValueError(
                    "sasl_oauth_token_url must be https:// (http:// only on a loopback address): "
                    "the client secret is sent to it"
                )
            sasl = False  # no username or password
        if sasl and not self.sasl_username:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username")
        if sasl and (self.sasl_password is None) == (self.sasl_password_file is None):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_password or sasl_password_file"
            )
        if not self.security_protocol.endswith("SSL") and (
            self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile
        ):
            raise ValueError(
                f"ssl_* files need security_protocol SSL or SASL_SSL, not {self.security_protocol}"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        return self


class SpoolSettings(_Frozen):
    """The durable buffer between sources and Kafka."""

    path: Path = Path("var/spool/events.db")
    max_records: int = Field(default=100_000, ge=1)
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    #: ``normal`` survives a process crash; ``full`` also survives power loss (slower).
    synchronous: Literal["normal", "full"] = "normal"
    #: How many recent CloudEvents ids are remembered to drop duplicates.
    dedupe_window: int = Field(default=200_000, ge=0)


class WebSocketSourceSettings(_Frozen):
    """One vendor's WebSocket stream."""

    enabled: bool = True
    #: ``ws(s)://`` URL of the stream; empty = derived from the upstream's base_url.
    url: str = ""
    #: What to subscribe to (OpenFrame topics / OCTOSPINE events); empty = the
    #: ``subscriptions`` the upstream's ``(websocket)`` option declares.
    subscribe: list[str] = Field(default_factory=list)
    #: Protocol-level ping period; a missing pong within ``stall_timeout_seconds`` is a stall.
    ping_interval_seconds: float = Field(default=5.0, gt=0)
    stall_timeout_seconds: float = Field(default=10.0, gt=0)
    backoff_initial_seconds: float = Field(default=0.5, gt=0)
    backoff_max_seconds: float = Field(default=30.0, gt=0)
    #: A session that streamed this long makes the next reconnect start from
    #: ``backoff_initial_seconds`` again.
    backoff_reset_after_seconds: float = Field(default=30.0, ge=0)
    #: Larger frames close the connection (protocol error 1009); it is reopened.
    max_frame_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    #: Received frames waiting to be spooled, in bytes; when reached, the socket is
    #: not read until they drain (TCP pushes back on the vendor).
    max_queued_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    #: Read missed changes over REST after every reconnect.
    backfill: bool = True
    #: An event without a time (frames shaped ``{type, data}``) moves the watermark to
    #: its receipt time minus this margin (the vendor's clock skew and send delay).
    watermark_margin_seconds: float = Field(default=5.0, ge=0)


class WebhookSourceSettings(_Frozen):
    """How the deliveries of one upstream (declared by its ``(webhook)`` option) are
    received and authenticated. Default deny: no secret or token, every delivery 503."""

    enabled: bool = True
    #: Route on the webhook server; empty = ``/webhooks/<upstream>``.
    path: str = ""
    #: ``signature``: the vendor's declared keyed-hash signature with ``secrets``;
    #: ``token``: a static header (``token_header: token_scheme <token>``) equal to
    #: one of ``tokens``, compared in constant time (vendors whose webhooks carry
    #: configured headers and no secret). ``None``: ``signature`` when the upstream
    #: declares one, else ``token``.
    auth: Literal["signature", "token"] | None = None
    #: Active signing secrets (several during a rotation).
    secrets: list[SecretStr] = Field(default_factory=list)
    #: Or a file of them, one a line, newest first, re-read when it changes.
    secrets_file: Path | None = None
    token_header: str = "Authorization"
    #: Word before the token in the header ("" = the header is the bare token).
    token_scheme: str = "Bearer"
    #: Accepted tokens (several during a rotation).
    tokens: list[SecretStr] = Field(default_factory=list)
    #: Or a file of them, one a line, re-read when it changes.
    tokens_file: Path | None = None
    #: Accepted distance between the delivery's time and now (replay window).
    tolerance_seconds: float = Field(default=300.0, gt=0)
    #: Deliveries without a time field (the documented ``{event, data}`` body) are
    #: refused unless this is false; they are then protected from replay by their
    #: delivery id (body id, id header, else the body's SHA-256), remembered in the
    #: spool for ``replay_window_seconds``.
    require_timestamp: bool = True
    replay_window_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _inline_or_file(self) -> WebhookSourceSettings:
        for inline, file in (("secrets", "secrets_file"), ("tokens", "tokens_file")):
            if getattr(self, inline) and getattr(self, file) is not None:
                raise ValueError(f"set {inline} or {file}, not both")
        return self


_MOVED_WEBHOOK_KEYS = ("secrets", "path", "tolerance_seconds")


class WebhookSettings(_Frozen):
    """The HTTP server receiving vendors' webhooks; one route per upstream in ``sources``."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    #: Share the port with the other workers of this host (set by the ``workers`` supervisor).
    reuse_port: bool = False
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Deliveries handled at once; more wait their turn (bodies buffered at most
    #: ``max_concurrent_deliveries * max_body_bytes``).
    max_concurrent_deliveries: int = Field(default=32, ge=1)
    #: A delivery's body must arrive within this long once its turn came, or it is
    #: refused (408): a sender trickling bytes would otherwise hold its turn for ever,
    #: and ``max_concurrent_deliveries`` such senders every delivery (vendors redeliver).
    read_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: A connection with no request in progress is closed after this long: one that
    #: sends nothing, or the headers of its next request too slowly. aiohttp's own
    #: default is 3,630 s, so anybody could hold a descriptor of the process (shared
    #: with the gRPC port, the upstreams and Kafka) for an hour per connection.
    idle_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: Connections open at once; one more is closed as soon as it is accepted. Idle
    #: timeouts bound how long a connection lives, not how many there are, and each
    #: holds a descriptor the whole process shares. A TLS handshake must end within
    #: ``idle_timeout_seconds``.
    max_connections: int = Field(default=1024, ge=1)
    #: Headers a delivery may carry, and bytes of its request line, of a header's name
    #: and of its value; more gets 400 before the request reaches a handler. Vendors
    #: send a dozen short headers. aiohttp's defaults (128 headers of up to 8 KiB) let
    #: each connection's unfinished request hold ~2 MB of the process's memory.
    max_headers: int = Field(default=48, ge=8, le=128)
    max_header_bytes: int = Field(default=4096, ge=256, le=8190)
    #: Per upstream name; an upstream that declares webhooks and has no entry gets
    #: the defaults (and no secret: its deliveries get 503).
    sources: dict[str, WebhookSourceSettings] = Field(default_factory=dict)
    #: Serve HTTPS with this certificate (re-read when the files change, every 2 s).
    #: Vendors rarely present client certificates: ``client_auth = "none"`` then.
    tls: TlsSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, values: Any) -> Any:
        """The single-vendor keys of earlier versions name where they went."""
        if isinstance(values, dict):
            moved = [k for k in _MOVED_WEBHOOK_KEYS if k in values]
            if moved:
                raise ValueError(
                    f"{', '.join(moved)} moved to events.webhook.sources.<upstream>."
                    f"{moved[0]} (e.g. MESH_EVENTS__WEBHOOK__SOURCES__OCTOSPINE__{moved[0].upper()})"
                )
        return values


class EventsSettings(_Frozen):
    """WebSocket and webhook events fanned out onto Kafka."""

    enabled: bool = True
    kafka: KafkaSettings = KafkaSettings()
    spool: SpoolSettings = SpoolSettings()
    #: Prepended to every topic name, e.g. ``prod.``.
    topic_prefix: str = ""
    #: Default topic name (from the protos) -> name to use instead.
    topic_renames: dict[str, str] = Field(default_factory=dict)
    #: Default topic name -> further topics that receive the same events (fan-out),
    #: e.g. ``{"openframe.security_events": ["siem.inbound"]}``.
    extra_topics: dict[str, list[str]] = Field(default_factory=dict)
    #: Topics whose record values are JSON instead of protobuf.
    json_topics: list[str] = Field(default_factory=list)
    dead_letter_topic: str = "meshadapter.deadletter"
    #: Vendor payloads nesting objects/arrays deeper than this are dead-lettered
    #: before any message is built from them.
    max_payload_depth: int = Field(default=64, ge=1, le=1000)
    #: Per upstream name (``openframe``, ``octospine``); an upstream that declares a
    #: stream and has no entry gets the defaults.
    websockets: dict[str, WebSocketSourceSettings] = Field(default_factory=dict)
    webhook: WebhookSettings = WebhookSettings()
    #: Replicas sharing the streams through a Kafka consumer group (docs/scaling.md).
    coordination: CoordinationSettings = CoordinationSettings()


def _secret_may_travel_to(url: str) -> bool:
    """An https URL, or http to this host (a test's or a sidecar's token endpoint)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False
