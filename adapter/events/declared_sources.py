"""Builds the event sources of every upstream that declares them and is
configured: one :class:`WebSocketSource` per declared stream, and one
:class:`WebhookReceiver` with a route per declared webhook source.

The composition root calls :func:`build_declared_sources` once and starts what it
returns; nothing here names a vendor. What the protos declare (paths, frames,
signature scheme, backfill) meets what configuration decides (URLs, secrets or
tokens, whether a time is required, timings) here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adapter.config.settings import (
    ConfigError,
    Settings,
    WebhookSourceSettings,
    WebSocketSourceSettings,
    env_variable,
)
from adapter.lifecycle.supervisor import Supervisor
from adapter.resilience.rate_limiter import UpstreamRateLimiter
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.credentials import CredentialProvider
from adapter.upstream.errors import CredentialError

from .backfill import Backfiller
from .declarations import DeclarationError, EventSourceDeclarations, WebhookDeclaration
from .intake import EventIntake
from .watermarks import Watermarks
from .webhook_auth import DeliveryCheck, SignatureCheck, TokenCheck, token_digest
from .webhook_receiver import WebhookEndpoint, WebhookReceiver
from .webhook_secret_files import ValuesFile
from .webhook_verifier import WebhookVerifier
from .websocket_source import WebSocketSource

__all__ = ["DeclaredSources", "build_declared_sources", "websocket_url"]

logger = logging.getLogger(__name__)


@dataclass
class DeclaredSources:
    """What :func:`build_declared_sources` built, not started yet."""

    streams: dict[str, WebSocketSource] = field(default_factory=dict)
    webhook: WebhookReceiver | None = None


def websocket_url(base_url: str, path: str) -> str:
    """``http://host:port`` + ``/v1/ws`` -> ``ws://host:port/v1/ws``."""
    scheme, _, rest = base_url.rstrip("/").partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"


def build_declared_sources(
    declarations: EventSourceDeclarations,
    settings: Settings,
    *,
    intake: EventIntake,
    watermarks: Watermarks,
    transcoders: Mapping[str, MethodTranscoder],
    callers: Mapping[str, UpstreamCaller],
    credentials: Mapping[str, CredentialProvider],
    codec: JsonCodec,
    supervisor: Supervisor | None = None,
    limiters: Sequence[UpstreamRateLimiter] = (),
) -> DeclaredSources:
    """The sources of the configured upstreams; raises DeclarationError when the
    configuration names a stream or webhook source no upstream declares, or asks
    for a signature the upstream does not declare."""
    events = settings.events
    _check_names("events.websockets", events.websockets, declarations.streams)
    _check_names("events.webhook.sources", events.webhook.sources, declarations.webhooks)
    built = DeclaredSources()
    for name, stream in sorted(declarations.streams.items()):
        upstream = settings.upstreams.get(name)
        config = events.websockets.get(name) or WebSocketSourceSettings()
        if upstream is None or not config.enabled:
            continue
        backfiller = Backfiller(
            name, stream.backfill, transcoders=transcoders, caller=callers[name], codec=codec
        )
        built.streams[name] = WebSocketSource(
            stream,
            config,
            url=config.url or websocket_url(str(upstream.base_url), stream.path),
            credentials=credentials[name],
            intake=intake,
            watermarks=watermarks,
            backfiller=backfiller,
            supervisor=supervisor,
            admission=_upgrade_admission(name, limiters, config.stall_timeout_seconds),
        )
    if events.webhook.enabled:
        endpoints = [
            _endpoint(name, hook, events.webhook.sources.get(name) or WebhookSourceSettings())
            for name, hook in sorted(declarations.webhooks.items())
            if name in settings.upstreams
            and (name not in events.webhook.sources or events.webhook.sources[name].enabled)
        ]
        if endpoints:
            built.webhook = WebhookReceiver(events.webhook, endpoints, intake=intake)
    return built


def _upgrade_admission(
    upstream: str, limiters: Sequence[UpstreamRateLimiter], open_timeout: float
) -> Callable[[], Awaitable[None]] | None:
    """The vendor counts a WebSocket upgrade against the REST quota: so does its limiter."""
    rest = next((x for x in limiters if x.name == upstream and x.quota == "rest"), None)
    if rest is None:
        return None
    limiter = rest

    async def admit() -> None:
        deadline = asyncio.get_running_loop().time() + open_timeout
        await limiter.reserve("websocket upgrade", deadline=deadline, hold=open_timeout)

    return admit


def _values_file(
    name: str, key: str, path: Path, convert: Callable[[str], bytes]
) -> Callable[[], tuple[bytes, ...]]:
    """The file's current values; one that cannot be read at start stops it, naming the key."""
    try:
        return ValuesFile(path, convert).values
    except (CredentialError, ValueError) as exc:
        dotted = f"events.webhook.sources.{name}.{key}"
        raise ConfigError(f"{dotted} ({env_variable(dotted)}): {exc}") from None


def _endpoint(name: str, declared: WebhookDeclaration, config: WebhookSourceSettings) -> WebhookEndpoint:
    mode = config.auth or ("signature" if declared.signature is not None else "token")
    check: DeliveryCheck
    if mode == "signature":
        if declared.signature is None:
            raise DeclarationError(
                f"events.webhook.sources.{name}.auth is 'signature' but {name} declares no "
                "signature in its (meshadapter.options.v1.webhook) option; use 'token'"
            )
        if config.secrets_file is not None:
            keys = _values_file(name, "secrets_file", config.secrets_file, str.encode)
            check = SignatureCheck(declared.signature, keys)
        else:
            if not config.secrets:
                logger.warning("%s webhooks: no secrets configured, every delivery will get 503", name)
            check = SignatureCheck(declared.signature, config.secrets)
    elif config.tokens_file is not None:
        digests = _values_file(name, "tokens_file", config.tokens_file, token_digest)
        check = TokenCheck(config.token_header, config.token_scheme, digests)
    else:
        if not config.tokens:
            logger.warning("%s webhooks: no tokens configured, every delivery will get 503", name)
        check = TokenCheck(config.token_header, config.token_scheme, config.tokens)
    if not config.require_timestamp:
        logger.info(
            "%s webhooks: deliveries without %r accepted; replays caught by delivery id for %.0fs",
            name,
            declared.body.time_field,
            config.replay_window_seconds,
        )
    verifier = WebhookVerifier(
        check,
        time_field=declared.body.time_field,
        tolerance_seconds=config.tolerance_seconds,
        require_timestamp=config.require_timestamp,
    )
    return WebhookEndpoint(
        path=config.path or f"/webhooks/{name}",
        declaration=declared,
        verifier=verifier,
        replay_window_seconds=config.replay_window_seconds,
    )


def _check_names(key: str, configured: Mapping[str, object], declared: Mapping[str, object]) -> None:
    unknown = sorted(set(configured) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise DeclarationError(
            f"{key} names {', '.join(unknown)}, which no loaded proto declares (declared: {known})"
        )
