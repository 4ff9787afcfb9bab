"""Acme Freight, the made-up third vendor: a small upstream for the tests.

Its dialect differs from both real vendors on purpose, so that bridging it proves
the adapter knows none of them:

- REST under ``/api/v2``, API key in ``X-Acme-Key``; lists are
  ``{"items": [...], "next": <cursor> | null}`` paged with ``limit``/``cursor``;
  ``changed_since`` keeps what changed strictly after a time; errors ``{"message"}``.
- WebSocket ``/realtime``: ``{"kind": "hello"}``, then the client's
  ``{"op": "listen", "channels": [...]}`` is answered ``{"kind": "listening"}``;
  events are ``{"kind": "shipment.changed", "eid", "at", "body"}``.
- Webhooks: ``{"topic", "delivery", "sent_at", "payload"}`` signed
  ``X-Acme-Signature: base64(HMAC-SHA512(secret, body))``, id in ``X-Acme-Delivery``.

Test hooks: ``drop()`` aborts every WebSocket, ``refuse_websockets`` answers
upgrades 503, ``acknowledge`` withholds the ``listening`` answer, ``requests``
records every REST call.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import itertools
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType, web

Json = dict[str, Any]


@dataclass
class Delivery:
    id: str
    body: bytes
    headers: dict[str, str]
    statuses: list[int] = field(default_factory=list)


class AcmeUpstream:
    """Acme's REST, WebSocket and webhooks on 127.0.0.1, an ephemeral port."""

    def __init__(self, *, api_key: str, webhook_secret: str) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url = ""  # where deliveries go (the adapter's receiver)
        self.shipments: dict[str, Json] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.deliveries: list[Delivery] = []
        self.ws_connects = 0
        self.refuse_websockets = False
        self.acknowledge = True
        self._listening: set[web.WebSocketResponse] = set()
        self._sockets: dict[web.WebSocketResponse, web.Request] = {}
        self._ids = itertools.count(1)
        self._events = itertools.count(1)
        self._last_ms = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/api/v2/shipments", self._list)
        app.router.add_post("/api/v2/shipments", self._create)
        app.router.add_get("/api/v2/shipments/{id}", self._get)
        app.router.add_post("/api/v2/shipments/{id}/deliver", self._deliver)
        app.router.add_get("/realtime", self._realtime)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionError):
                await ws.close()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # state changes (the REST handlers and the tests use them) -----------------

    def create(self, reference: str, destination: str = "Lyon", weight_kg: float = 1.0) -> Json:
        now = self._now()
        shipment = {
            "id": f"shp_{next(self._ids):04d}",
            "reference": reference,
            "destination": destination,
            "status": "booked",
            "weight_kg": weight_kg,
            "created_at": now,
            "updated_at": now,
        }
        self.shipments[shipment["id"]] = shipment
        self._publish(shipment)
        return shipment

    def deliver(self, shipment_id: str) -> Json:
        shipment = {**self.shipments[shipment_id], "status": "delivered", "updated_at": self._now()}
        self.shipments[shipment_id] = shipment
        self._publish(shipment)
        self._send_webhook("shipment.delivered", shipment)
        return shipment

    def drop(self) -> int:
        """Aborts every WebSocket connection (no close frame)."""
        dropped = list(self._sockets.values())
        for request in dropped:
            if request.transport is not None:
                request.transport.abort()
        return len(dropped)

    @property
    def listeners(self) -> int:
        return len(self._listening)

    # REST ----------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            self.requests.append((request.method, request.path, dict(request.query)))
        if request.headers.get("X-Acme-Key") != self.api_key:
            return web.json_response({"message": "unknown key"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def _list(self, request: web.Request) -> web.Response:
        items = sorted(self.shipments.values(), key=lambda s: (s["created_at"], s["id"]))
        since = request.query.get("changed_since")
        if since:
            try:
                bound = _parse(since)
            except ValueError:
                return web.json_response({"message": "changed_since is not RFC 3339"}, status=400)
            items = [s for s in items if _parse(s["updated_at"]) > bound]
        start = int(request.query.get("cursor", "0") or 0)
        limit = min(int(request.query.get("limit", "10")), 100)
        page = items[start : start + limit]
        following = start + limit if start + limit < len(items) else None
        return web.json_response({"items": page, "next": str(following) if following is not None else None})

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict) or not body.get("reference"):
            return web.json_response({"message": "reference is required"}, status=422)
        shipment = self.create(body["reference"], body.get("destination", ""), body.get("weight_kg", 0.0))
        return web.json_response(shipment, status=201)

    async def _get(self, request: web.Request) -> web.Response:
        shipment = self.shipments.get(request.match_info["id"])
        if shipment is None:
            return web.json_response({"message": "no such shipment"}, status=404)
        return web.json_response(shipment)

    async def _deliver(self, request: web.Request) -> web.Response:
        if request.match_info["id"] not in self.shipments:
            return web.json_response({"message": "no such shipment"}, status=404)
        return web.json_response(self.deliver(request.match_info["id"]))

    # WebSocket -----------------------------------------------------------------

    async def _realtime(self, request: web.Request) -> web.StreamResponse:
        self.ws_connects += 1
        if self.refuse_websockets:
            return web.json_response({"message": "maintenance"}, status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets[ws] = request
        try:
            await ws.send_str('{"kind": "hello"}')
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                command = orjson.loads(message.data)
                if command.get("op") == "listen" and "shipments" in command.get("channels", []):
                    self._listening.add(ws)
                    if self.acknowledge:
                        await ws.send_str(
                            orjson.dumps({"kind": "listening", "channels": ["shipments"]}).decode()
                        )
        finally:
            self._sockets.pop(ws, None)
            self._listening.discard(ws)
        return ws

    def _publish(self, shipment: Json) -> None:
        frame = {
            "kind": "shipment.changed",
            "eid": f"ev-{next(self._events)}",
            "at": self._now(),
            "body": shipment,
        }
        text = orjson.dumps(frame).decode()
        for ws in list(self._listening):
            self._spawn(_send(ws, text))

    # webhooks ------------------------------------------------------------------

    def _send_webhook(self, topic: str, payload: Json) -> None:
        if not self.webhook_url:
            return
        delivery_id = f"dlv-{len(self.deliveries) + 1}"
        body = orjson.dumps(
            {"topic": topic, "delivery": delivery_id, "sent_at": self._now(), "payload": payload}
        )
        signature = hmac.new(self.webhook_secret.encode(), body, hashlib.sha512).digest()
        headers = {
            "Content-Type": "application/json",
            "X-Acme-Signature": base64.b64encode(signature).decode(),
            "X-Acme-Delivery": delivery_id,
        }
        delivery = Delivery(delivery_id, body, headers)
        self.deliveries.append(delivery)
        self._spawn(self._post(delivery))

    async def _post(self, delivery: Delivery) -> None:
        assert self._session is not None
        async with self._session.post(
            self.webhook_url, data=delivery.body, headers=delivery.headers
        ) as answer:
            await answer.read()
            delivery.statuses.append(answer.status)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _now(self) -> str:
        """RFC 3339 with milliseconds, strictly increasing (so id + updated_at name one version)."""
        ms = max(int(dt.datetime.now(dt.UTC).timestamp() * 1000), self._last_ms + 1)
        self._last_ms = ms
        moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _send(ws: web.WebSocketResponse, text: str) -> None:
    with contextlib.suppress(ConnectionError, aiohttp.ClientError):  # a dropped session misses it
        await ws.send_str(text)


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
