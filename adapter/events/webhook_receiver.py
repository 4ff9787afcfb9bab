"""HTTP server for vendors' webhook deliveries: one route per source that
declares webhooks (``(meshadapter.options.v1.webhook)``) and is configured.

Answers (vendors redeliver on anything but 2xx), for every input:

- ``200`` once the event is durable (in the spool, hence on its way to Kafka),
  or was already received (same delivery id / CloudEvents id), or was
  authentic but unusable (not JSON, no event type, a payload that does not
  decode) and went to the dead-letter topic: redelivering it would not help;
- ``401`` bad or missing signature or token (whatever bytes the header holds),
  stale or future time, no time where one is required;
- ``413`` body over the size limit;
- ``503`` + ``Retry-After`` when the spool is full (or no secret/token is configured).

A delivery without a time (when its source allows that) is protected from replay
by its delivery id: the body's id field, else the declared id header, else the
SHA-256 of the body. The id is claimed in the spool together with the event
(:mod:`adapter.events.delivery_claims`), so a replay within
``replay_window_seconds`` is acknowledged and published nothing, also after a
restart.

At most ``max_concurrent_deliveries`` bodies are read at once; more requests wait
their turn, so buffered bodies stay under that many times ``max_body_bytes``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from adapter.config.settings import WebhookSettings
from adapter.security.tls import ReloadingSslContext
from adapter.server.connection_cap import ConnectionCap, listen
from adapter.server.http_error_log import MalformedRequestLog
from adapter.telemetry.repeated_lines import RepeatedLines

from .declarations import WebhookDeclaration
from .delivery_claims import DeliveryClaim
from .encoding import MAX_ENVELOPE_TEXT, VendorEvent, envelope_problem
from .intake import EventIntake, IntakeFullError
from .webhook_verifier import VerifiedWebhook, WebhookRejectedError, WebhookVerifier

__all__ = ["WebhookEndpoint", "WebhookReceiver"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """One source's route: where it is, how its bodies look, how they are verified."""

    path: str
    declaration: WebhookDeclaration
    verifier: WebhookVerifier
    #: How long the ids of deliveries without a time are remembered.
    replay_window_seconds: float = 7 * 24 * 3600.0

    @property
    def source(self) -> str:
        return self.declaration.source


class WebhookReceiver:
    """An aiohttp server with one route per webhook source (plus ``GET /healthz``)."""

    def __init__(
        self,
        settings: WebhookSettings,
        endpoints: Sequence[WebhookEndpoint],
        *,
        intake: EventIntake,
        clock: Callable[[], float] = time.time,
    ) -> None:
        paths = [e.path for e in endpoints]
        if len(set(paths)) != len(paths):
            raise ValueError(f"two webhook sources share a path: {sorted(paths)}")
        self.settings = settings
        self.endpoints = tuple(endpoints)
        self._intake = intake
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        #: Connections open and refused on the port (its cap: ``max_connections``).
        self.connections = ConnectionCap(
            settings.max_connections, name="webhook port", setting="events.webhook.max_connections"
        )
        self._tls = ReloadingSslContext(settings.tls) if settings.tls is not None else None
        self._slots = asyncio.Semaphore(settings.max_concurrent_deliveries)
        self.port = 0
        #: Outcomes and refusal reasons, over every source.
        self.counts: Counter[str] = Counter()
        # Anybody who reaches the port can be refused as often as they like (an unsigned
        # delivery costs them nothing): a line per source and reason per interval, with a count.
        self._refusal_lines = RepeatedLines(logger)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        for endpoint in self.endpoints:
            app.router.add_post(endpoint.path, self._handler(endpoint))
        app.router.add_get("/healthz", self._health)
        return app

    async def start(self) -> int:
        # auto_decompress off: aiohttp would inflate a gzip body as it arrives, on the
        # event loop, and go on inflating one past the size cap to drain it (~1 MB of
        # zeros is ~1 GB: seconds of a stalled loop, from anybody, before any signature
        # check). Vendors sign and send plain JSON; an encoded body is refused (415).
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            auto_decompress=False,
            keepalive_timeout=self.settings.idle_timeout_seconds,
            max_headers=self.settings.max_headers,
            max_field_size=self.settings.max_header_bytes,
            max_line_size=self.settings.max_header_bytes,
            logger=MalformedRequestLog(logger, "webhook port", self._malformed),
        )
        await runner.setup()
        listener: asyncio.Server | None = None
        try:
            ssl_context = self._tls.context if self._tls is not None else None
            listener = await listen(
                runner,
                self.connections,
                self.settings.host,
                self.settings.port,
                ssl=ssl_context,
                reuse_port=self.settings.reuse_port or None,
                # A TLS connection counts once its handshake is done; until then it is
                # bounded by this (asyncio's default is 60 s).
                ssl_handshake_timeout=self.settings.idle_timeout_seconds if ssl_context else None,
            )
            if self._tls is not None:
                await self._tls.start()
        except BaseException:
            if listener is not None:
                listener.close()
            await runner.cleanup()
            raise
        self._runner, self._listener = runner, listener
        self.port = int(listener.sockets[0].getsockname()[1])
        for endpoint in self.endpoints:
            logger.info(
                "receiving %s webhooks on %s://%s:%d%s",
                endpoint.source,
                "https" if self._tls is not None else "http",
                self.settings.host,
                self.port,
                endpoint.path,
            )
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()  # no new connections; cleanup() then ends the open ones
        if self._tls is not None:
            await self._tls.stop()
        if runner is not None:
            await runner.cleanup()

    def _refused(
        self, endpoint: WebhookEndpoint, reason: str, why: str, *args: object, count: bool = True
    ) -> None:
        """Counts a refused delivery under ``reason`` and logs it (throttled per source and reason)."""
        if count:
            self.counts[reason] += 1
        self._refusal_lines.log(
            logging.WARNING, (endpoint.source, reason), "%s webhook refused: " + why, endpoint.source, *args
        )

    def _malformed(self) -> None:
        self.counts["MALFORMED_HTTP_REQUEST"] += 1

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _handler(self, endpoint: WebhookEndpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(endpoint, request)

        return handle

    async def _handle(self, endpoint: WebhookEndpoint, request: web.Request) -> web.Response:
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding != "identity":
            self._refused(endpoint, "UNSUPPORTED_CONTENT_ENCODING", "Content-Encoding %.40r", encoding)
            return _answer(
                415,
                "UNSUPPORTED_CONTENT_ENCODING",
                "send the body as is (no Content-Encoding): it is signed so",
            )
        async with self._slots:
            try:
                async with asyncio.timeout(self.settings.read_timeout_seconds):
                    body = await request.read()
            except TimeoutError:
                self._refused(
                    endpoint,
                    "BODY_TIMEOUT",
                    "body not received within %.0f s",
                    self.settings.read_timeout_seconds,
                )
                return _answer(
                    408, "BODY_TIMEOUT", f"body not received within {self.settings.read_timeout_seconds:g} s"
                )
            except web.HTTPRequestEntityTooLarge:
                self.counts["too_large"] += 1
                self._refused(
                    endpoint,
                    "BODY_TOO_LARGE",
                    "body over %d bytes",
                    self.settings.max_body_bytes,
                    count=False,
                )
                return _answer(413, "BODY_TOO_LARGE", f"body over {self.settings.max_body_bytes} bytes")
            try:
                delivery = endpoint.verifier.verify(body, request.headers)
            except WebhookRejectedError as exc:
                self._refused(endpoint, exc.reason, "%d %s: %s", exc.status, exc.reason, exc.detail)
                headers = {"Retry-After": "60"} if exc.status == 503 else None
                return _answer(exc.status, exc.reason, exc.detail, headers)
            id_header = endpoint.declaration.id_header
            header_id = request.headers.get(id_header, "") if id_header else ""
            event = self._event(endpoint.declaration, delivery, body, header_id)
            claim = None
            if not delivery.timed:
                delivery_id = _delivery_id(event, header_id, body)
                claim = DeliveryClaim(
                    key=f"{endpoint.source}\x00{delivery_id}",
                    expires_at=self._clock() + endpoint.replay_window_seconds,
                )
            try:
                result = await self._intake.accept([event], claim=claim)
            except IntakeFullError as exc:
                self.counts["spool_full"] += 1
                return _answer(503, "SPOOL_FULL", str(exc), {"Retry-After": f"{exc.retry_after:.0f}"})
            outcome = "accepted" if result.accepted else "duplicate" if result.duplicates else "dead_lettered"
            self.counts[outcome] += 1
            return web.json_response({"status": outcome, "id": event.id})

    def _event(
        self, declared: WebhookDeclaration, delivery: VerifiedWebhook, body: bytes, header_id: str
    ) -> VendorEvent:
        """The delivery as an event; one the intake dead-letters when it is unusable."""
        doc = delivery.body
        names = declared.body
        problem = delivery.problem
        event_type = doc.get(names.type_field)
        if not problem and (not isinstance(event_type, str) or not event_type):
            problem = f"body has no string {names.type_field!r}"
        envelope = {
            names.id_field: doc.get(names.id_field),
            names.action_field: doc.get(names.action_field),
            names.time_field: doc.get(names.time_field),
        }
        problem = problem or envelope_problem(envelope)
        if problem:
            self.counts["MALFORMED_BODY"] += 1
            return VendorEvent(
                source=declared.source,
                type=event_type[:200] if isinstance(event_type, str) else "",
                id=header_id[:MAX_ENVELOPE_TEXT],
                channel="webhook",
                raw=body,
                malformed=problem,
            )
        assert isinstance(event_type, str)
        return VendorEvent(
            source=declared.source,
            type=event_type,
            id=str(envelope[names.id_field] or header_id[:MAX_ENVELOPE_TEXT] or ""),
            action=str(envelope[names.action_field] or ""),
            timestamp=str(envelope[names.time_field] or ""),
            data=doc.get(names.data_field),
            channel="webhook",
            raw=body,
        )


def _delivery_id(event: VendorEvent, header_id: str, body: bytes) -> str:
    """What identifies a delivery across redeliveries and replays."""
    return event.id or header_id[:MAX_ENVELOPE_TEXT] or "sha256:" + hashlib.sha256(body).hexdigest()


def _answer(status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": reason, "message": detail}}, status=status, headers=headers)
