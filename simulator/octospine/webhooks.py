"""Outgoing, HMAC-signed OCTOSPINE webhooks with redelivery.

For each target subscribed to an event (configured `WebhookTarget`s and active outgoing
webhooks in the store), one delivery is made::

    POST <url>
    x-octospine-signature: sha256=<hex HMAC-SHA256(secret, raw body)>
    x-octospine-event: task.completed
    x-octospine-delivery: whd_000001

    {"id": "whd_000001", "event": "task.completed", "timestamp": "...", "data": {...}}

or, with `webhook_body_shape="documented"`, the guide's ``{"event": ..., "data": {...}}``.

A non-2xx answer or a network error is redelivered with the same id and body after
`base`, `2*base`, `4*base`... seconds, up to `max_attempts` attempts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from simulator.config import SimulatorConfig
from simulator.store import ResourceStore
from simulator.wire import JsonObject, dumps, now_timestamp

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DeliveryState = Literal["pending", "delivered", "failed", "refused"]


def sign(secret: str, body: bytes) -> str:
    """The `x-octospine-signature` value of `body`: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class DeliveryAttempt:
    """One POST of a delivery: the answer's status or the network error."""

    number: int
    status: int | None
    error: str | None
    at: str
    duration_ms: float


@dataclass
class WebhookDelivery:
    """A webhook event on its way to one target, with every attempt so far."""

    id: str
    event: str
    url: str
    webhook_id: str | None
    body: bytes
    headers: dict[str, str]
    state: DeliveryState = "pending"
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    def to_json(self) -> JsonObject:
        """A summary for the admin API (headers omitted: they may hold secrets)."""
        return {
            "id": self.id,
            "event": self.event,
            "url": self.url,
            "webhook_id": self.webhook_id,
            "state": self.state,
            "attempts": [a.__dict__ for a in self.attempts],
        }


@dataclass(frozen=True)
class _Target:
    url: str
    secret: str
    headers: dict[str, str]
    webhook_id: str | None


class WebhookDispatcher:
    """Sends webhook events to every subscribed target, retrying failures in the background."""

    def __init__(self, config: SimulatorConfig, webhooks: ResourceStore) -> None:
        self._config = config
        self._webhooks = webhooks
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = 0
        self.deliveries: list[WebhookDelivery] = []

    async def start(self) -> None:
        """Opens the HTTP client."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._config.webhook_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        """Abandons pending redeliveries and closes the HTTP client (idempotent)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def emit(self, event: str, data: JsonObject, *, raw: bytes | None = None) -> list[WebhookDelivery]:
        """Starts one delivery per target subscribed to `event`; returns them. `raw`
        replaces the documented body (signed all the same): hostile-input tests."""
        deliveries = []
        for target in self._targets(event):
            self._seq += 1
            delivery_id = f"whd_{self._seq:06d}"
            documented = {"event": event, "data": data}
            full = {"id": delivery_id, "event": event, "timestamp": now_timestamp(), "data": data}
            if raw is not None:
                body = raw
            else:
                body = dumps(documented if self._config.webhook_body_shape == "documented" else full)
            headers = {**target.headers, "Content-Type": "application/json"}
            headers["x-octospine-event"] = event
            headers["x-octospine-delivery"] = delivery_id
            if target.secret:
                headers["x-octospine-signature"] = sign(target.secret, body)
            delivery = WebhookDelivery(delivery_id, event, target.url, target.webhook_id, body, headers)
            self.deliveries.append(delivery)
            deliveries.append(delivery)
            task = asyncio.create_task(self._deliver(delivery), name=f"webhook-{delivery_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return deliveries

    def _targets(self, event: str) -> list[_Target]:
        targets = [
            _Target(t.url, t.secret, dict(t.headers), None)
            for t in self._config.webhook_targets
            if event in t.events
        ]
        for hook in self._webhooks.all():
            if hook.get("type") != "outgoing" or not hook.get("active", True):
                continue
            if event not in (hook.get("events") or []) or not hook.get("url"):
                continue
            secret = (hook.get("authentication") or {}).get("secret") or ""
            targets.append(_Target(hook["url"], secret, dict(hook.get("headers") or {}), hook["id"]))
        return targets

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        host = urlsplit(delivery.url).hostname or ""
        if host not in LOOPBACK_HOSTS and not self._config.allow_external_webhooks:
            logger.warning("webhook %s: refused non-loopback target %s", delivery.id, host)
            delivery.state = "refused"
            return
        max_attempts = max(1, self._config.webhook_max_attempts)
        for number in range(1, max_attempts + 1):
            if await self._attempt(delivery, number):
                delivery.state = "delivered"
                return
            if number < max_attempts:
                await asyncio.sleep(self._config.webhook_backoff_base_s * 2 ** (number - 1))
        delivery.state = "failed"
        logger.warning("webhook %s to %s failed after %d attempts", delivery.id, delivery.url, max_attempts)

    async def _attempt(self, delivery: WebhookDelivery, number: int) -> bool:
        assert self._session is not None, "dispatcher not started"
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            async with self._session.post(
                delivery.url, data=delivery.body, headers=delivery.headers, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        elapsed = (time.monotonic() - started) * 1000
        delivery.attempts.append(DeliveryAttempt(number, status, error, now_timestamp(), elapsed))
        logger.info("webhook %s %s attempt %d -> %s", delivery.id, delivery.event, number, status or error)
        return status is not None and 200 <= status < 300
