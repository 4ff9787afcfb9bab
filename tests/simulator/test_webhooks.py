"""Outgoing OCTOSPINE webhooks: signature, headers, redelivery with the same id and body."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest_asyncio
from aiohttp import web

from simulator import Simulator, WebhookTarget
from tests.simulator.conftest import OS_KEY, StartSim

SECRET = "whsec-test"


@dataclass
class Receiver:
    """A tiny webhook receiver that fails the first `failures` deliveries."""

    url: str = ""
    failures: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        if len(self.received) <= self.failures:
            return web.Response(status=500)
        return web.json_response({"ok": True})


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    target.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    yield target
    await runner.cleanup()


def _signature_ok(headers: dict[str, str], body: bytes, secret: str = SECRET) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-octospine-signature"], expected)


async def test_configured_target_gets_signed_event(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim(webhook_targets=(WebhookTarget(url=receiver.url, secret=SECRET),))
    [delivery] = await sim.emit_webhook_event("alert.new", {"id": "oal_x"})
    await sim.wait_for(lambda: delivery.state == "delivered")
    [(headers, body)] = receiver.received
    assert _signature_ok(headers, body)
    assert headers["x-octospine-event"] == "alert.new"
    assert headers["x-octospine-delivery"] == delivery.id
    assert headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert set(document) == {"id", "event", "timestamp", "data"}
    assert (document["id"], document["event"], document["data"]) == (
        delivery.id,
        "alert.new",
        {"id": "oal_x"},
    )


async def test_redelivery_keeps_id_and_body(start_sim: StartSim, receiver: Receiver) -> None:
    receiver.failures = 2
    sim = await start_sim(webhook_targets=(WebhookTarget(url=receiver.url, secret=SECRET),))
    [delivery] = await sim.emit_webhook_event("task.completed", {"id": "tsk_x"})
    await sim.wait_for(lambda: delivery.state == "delivered")
    assert [a.status for a in delivery.attempts] == [500, 500, 200]
    bodies = {body for _, body in receiver.received}
    ids = {headers["x-octospine-delivery"] for headers, _ in receiver.received}
    assert len(bodies) == 1 and ids == {delivery.id}


async def test_gives_up_after_max_attempts(start_sim: StartSim, receiver: Receiver) -> None:
    receiver.failures = 100
    sim = await start_sim(
        webhook_targets=(WebhookTarget(url=receiver.url, secret=SECRET),), webhook_max_attempts=3
    )
    [delivery] = await sim.emit_webhook_event("task.completed", {})
    await sim.wait_for(lambda: delivery.state == "failed")
    assert len(delivery.attempts) == 3 == len(receiver.received)


async def test_network_errors_are_retried(start_sim: StartSim, receiver: Receiver) -> None:
    dead = receiver.url.rsplit(":", 1)[0] + ":9/hooks"  # discard port: connection refused
    sim = await start_sim(webhook_targets=(WebhookTarget(url=dead, secret=SECRET),), webhook_max_attempts=2)
    [delivery] = await sim.emit_webhook_event("alert.new", {})
    await sim.wait_for(lambda: delivery.state == "failed")
    assert [a.status for a in delivery.attempts] == [None, None]
    assert all(a.error for a in delivery.attempts)


async def test_only_subscribed_targets_and_loopback(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim(
        webhook_targets=(
            WebhookTarget(url=receiver.url, secret=SECRET, events=("task.completed",)),
            WebhookTarget(url="http://hooks.example.com/x", secret=SECRET, events=("alert.new",)),
        )
    )
    [refused] = await sim.emit_webhook_event("alert.new", {})
    await sim.wait_for(lambda: refused.state == "refused")
    assert refused.attempts == [] and receiver.received == []


async def test_task_completion_and_rest_created_webhook(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim()
    headers = {"Authorization": f"Bearer {OS_KEY}"}
    async with httpx.AsyncClient(base_url=sim.octospine_url, headers=headers) as client:
        hook = await client.post(
            "/api/webhooks",
            json={
                "name": "Adapter",
                "type": "outgoing",
                "url": receiver.url,
                "events": ["task.completed"],
                "authentication": {"type": "hmac", "secret": "rest-secret"},
                "headers": {"X-Tenant": "t1"},
            },
        )
        assert hook.status_code == 201
        task = (await client.post("/api/tasks", json={"name": "W", "type": "x"})).json()
    await sim.wait_for(lambda: len(receiver.received) == 1)
    [(received_headers, body)] = receiver.received
    assert _signature_ok(received_headers, body, "rest-secret")
    assert received_headers["X-Tenant"] == "t1"
    document = json.loads(body)
    assert document["event"] == "task.completed"
    assert document["data"]["id"] == task["id"]
    assert document["data"]["status"] == "completed"
    assert sim.webhook_deliveries[0].webhook_id == hook.json()["id"]


async def test_generated_platform_alert_is_sent(start_sim: StartSim, receiver: Receiver) -> None:
    sim: Simulator = await start_sim(
        webhook_targets=(WebhookTarget(url=receiver.url, secret=SECRET, events=("alert.new",)),)
    )
    [alert] = await sim.generate_events("octospine", "alert.new", 1)
    await sim.wait_for(lambda: len(receiver.received) == 1)
    document = json.loads(receiver.received[0][1])
    assert document["data"] == alert
    assert sim.events("octospine")[-1]["data"] == alert


def test_target_parsing() -> None:
    target = WebhookTarget.parse("http://127.0.0.1:9000/h|s3cret|task.completed,alert.new")
    assert target == WebhookTarget(
        url="http://127.0.0.1:9000/h", secret="s3cret", events=("task.completed", "alert.new")
    )
    assert WebhookTarget.parse("http://127.0.0.1:9000/h|s").events == (
        "task.completed",
        "automation.triggered",
        "alert.new",
    )
