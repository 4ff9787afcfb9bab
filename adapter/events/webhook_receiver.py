"""HTTP endpoint for OCTOSPINE's outgoing webhooks.

Answers (the vendor redelivers on anything but 2xx):

- ``200`` once the event is durable (in the spool, hence on its way to Kafka),
  or was already received (same delivery id / CloudEvents id), or was
  authentic but unusable and went to the dead-letter topic;
- ``401`` bad or missing signature, stale or future timestamp (replay);
- ``400`` an authentic body that is not a JSON object with an ``event``;
- ``413`` body over the size limit;
- ``503`` + ``Retry-After`` when the spool is full or no secret is configured.
"""

from __future__ import annotations

import logging
from collections import Counter

from aiohttp import web

from adapter.config.settings import WebhookSettings

from .encoding import VendorEvent
from .intake import EventIntake, IntakeFullError
from .webhook_verifier import SIGNATURE_HEADER, WebhookRejectedError, WebhookVerifier

__all__ = ["WebhookReceiver"]

logger = logging.getLogger(__name__)


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
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        await site.start()
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
        doc = delivery.body
        event_type = doc.get("event")
        if not isinstance(event_type, str) or not event_type:
            self.counts["MALFORMED_BODY"] += 1
            return _answer(400, "MALFORMED_BODY", "body has no 'event'")
        event = VendorEvent(
            source=self._source,
            type=event_type,
            id=str(doc.get("id") or request.headers.get("x-octospine-delivery") or ""),
            action=str(doc.get("action") or ""),
            timestamp=str(doc.get("timestamp") or ""),
            data=doc.get("data"),
            channel="webhook",
            raw=body,
        )
        try:
            result = await self._intake.accept([event])
        except IntakeFullError as exc:
            self.counts["spool_full"] += 1
            return _answer(503, "SPOOL_FULL", str(exc), {"Retry-After": f"{exc.retry_after:.0f}"})
        outcome = "accepted" if result.accepted else "duplicate" if result.duplicates else "dead_lettered"
        self.counts[outcome] += 1
        return web.json_response({"status": outcome, "id": event.id})


def _answer(status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": reason, "message": detail}}, status=status, headers=headers)
