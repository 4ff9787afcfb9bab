"""HTTP endpoint for OCTOSPINE's outgoing webhooks.

Answers (the vendor redelivers on anything but 2xx), for every input:

- ``200`` once the event is durable (in the spool, hence on its way to Kafka),
  or was already received (same delivery id / CloudEvents id), or was
  authentic but unusable (not JSON, no ``event``, a payload that does not
  decode) and went to the dead-letter topic: redelivering it would not help;
- ``401`` bad or missing signature (whatever bytes the header holds), stale or
  future timestamp (replay);
- ``413`` body over the size limit;
- ``503`` + ``Retry-After`` when the spool is full (or no secret is configured).

At most ``max_concurrent_deliveries`` bodies are read at once; more requests wait
their turn, so buffered bodies stay under that many times ``max_body_bytes``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from aiohttp import web

from adapter.config.settings import WebhookSettings

from .encoding import MAX_ENVELOPE_TEXT, VendorEvent
from .intake import EventIntake, IntakeFullError
from .webhook_verifier import SIGNATURE_HEADER, VerifiedWebhook, WebhookRejectedError, WebhookVerifier

__all__ = ["WebhookReceiver"]

logger = logging.getLogger(__name__)

DELIVERY_HEADER = "x-octospine-delivery"


class WebhookReceiver:
    """An aiohttp server with one webhook route (plus ``GET /healthz``)."""

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        intake: EventIntake,
        verifier: WebhookVerifier,
        source: str = "octospine",
    ) -> None:
        self.settings = settings
        self._intake = intake
        self._verifier = verifier
        self._source = source
        self._runner: web.AppRunner | None = None
        self._slots = asyncio.Semaphore(settings.max_concurrent_deliveries)
        self.port = 0
        self.counts: Counter[str] = Counter()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_post(self.settings.path, self._handle)
        app.router.add_get("/healthz", self._health)
        return app

    async def start(self) -> int:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.settings.host, self.settings.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        logger.info("receiving webhooks on http://%s:%d%s", self.settings.host, self.port, self.settings.path)
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _handle(self, request: web.Request) -> web.Response:
        async with self._slots:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                self.counts["too_large"] += 1
                logger.warning("webhook refused: body over %d bytes", self.settings.max_body_bytes)
                return _answer(413, "BODY_TOO_LARGE", f"body over {self.settings.max_body_bytes} bytes")
            try:
                delivery = self._verifier.verify(body, request.headers.get(SIGNATURE_HEADER))
            except WebhookRejectedError as exc:
                self.counts[exc.reason] += 1
                logger.warning("webhook refused (%d %s): %s", exc.status, exc.reason, exc.detail)
                headers = {"Retry-After": "60"} if exc.status == 503 else None
                return _answer(exc.status, exc.reason, exc.detail, headers)
            event = self._event(delivery, body, request.headers.get(DELIVERY_HEADER, ""))
            try:
                result = await self._intake.accept([event])
            except IntakeFullError as exc:
                self.counts["spool_full"] += 1
                return _answer(503, "SPOOL_FULL", str(exc), {"Retry-After": f"{exc.retry_after:.0f}"})
            outcome = "accepted" if result.accepted else "duplicate" if result.duplicates else "dead_lettered"
            self.counts[outcome] += 1
            return web.json_response({"status": outcome, "id": event.id})

    def _event(self, delivery: VerifiedWebhook, body: bytes, delivery_header: str) -> VendorEvent:
        """The delivery as an event; one the intake dead-letters when it is unusable."""
        doc = delivery.body
        problem = delivery.problem
        event_type = doc.get("event")
        if not problem and (not isinstance(event_type, str) or not event_type):
            problem = "body has no string 'event'"
        envelope = {name: doc.get(name) for name in ("id", "action", "timestamp")}
        if not problem:
            bad = [
                name
                for name, value in envelope.items()
                if not (value is None or (isinstance(value, str | int) and not isinstance(value, bool)))
                or len(str(value)) > MAX_ENVELOPE_TEXT
            ]
            if bad:
                problem = f"envelope field(s) {', '.join(bad)} not a short string"
        if problem:
            self.counts["MALFORMED_BODY"] += 1
            return VendorEvent(
                source=self._source,
                type=event_type[:200] if isinstance(event_type, str) else "",
                id=delivery_header[:MAX_ENVELOPE_TEXT],
                channel="webhook",
                raw=body,
                malformed=problem,
            )
        assert isinstance(event_type, str)
        return VendorEvent(
            source=self._source,
            type=event_type,
            id=str(envelope["id"] or delivery_header[:MAX_ENVELOPE_TEXT] or ""),
            action=str(envelope["action"] or ""),
            timestamp=str(envelope["timestamp"] or ""),
            data=doc.get("data"),
            channel="webhook",
            raw=body,
        )


def _answer(status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": reason, "message": detail}}, status=status, headers=headers)
