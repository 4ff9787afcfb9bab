"""OCTOSPINE webhooks in the shapes its guide documents, end to end through the
simulator and the real broker: ``{event, data}`` bodies without a timestamp
(replays caught by delivery id), the outgoing webhook's static ``headers`` as a
shared token, ``task.failed`` on its own topic, and incoming webhooks (automation
triggers) fired through gRPC. Both authentication modes with their rejection matrix."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest
import pytest_asyncio
from google.protobuf import struct_pb2
from octospine.v1 import common_pb2, tasks_pb2, tasks_pb2_grpc, webhooks_pb2, webhooks_pb2_grpc
from octospine.v1 import events_pb2 as octo_events
from opentelemetry.sdk.trace import TracerProvider

from adapter.runtime import MeshAdapter
from simulator import Simulator, SimulatorConfig

from ..conftest import OCTOSPINE_KEY, OPENFRAME_KEY
from .kafka_fixtures import BOOTSTRAP, consume_all, wait_until
from .mesh_fixtures import WEBHOOK_SECRET, headers, mesh_settings

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = pytest.mark.usefixtures("kafka_bootstrap")

TOKEN = "external-system-token"  # the guide's `headers: {Authorization: 'Bearer ...'}`


@pytest_asyncio.fixture
async def documented_sim() -> AsyncIterator[Simulator]:
    """The simulator sending webhook bodies exactly as the guide shows them: ``{event, data}``."""
    sim = Simulator(
        SimulatorConfig(
            openframe_api_key=OPENFRAME_KEY,
            octospine_api_key=OCTOSPINE_KEY,
            openframe_port=0,
            octospine_port=0,
            webhook_body_shape="documented",
            webhook_backoff_base_s=0.05,
            webhook_max_attempts=3,
            task_duration_s=0.6,
        )
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def start_mesh(
    sim: Simulator, tmp_path: Path, prefix: str, tp: TracerProvider, **source: Any
) -> MeshAdapter:
    settings = mesh_settings(sim, tmp_path, prefix, webhook={"port": 0, "sources": {"octospine": source}})
    adapter = MeshAdapter(settings, tracer_provider=tp)
    await adapter.start()
    return adapter


def receiver_url(mesh: MeshAdapter) -> str:
    assert mesh.events is not None and mesh.events.webhook is not None
    return f"http://127.0.0.1:{mesh.events.webhook.port}/webhooks/octospine"


async def outgoing_webhook(
    mesh: MeshAdapter, events: list[str], *, secret: str = "", token: str = ""
) -> None:
    """Registers an outgoing OCTOSPINE webhook to the adapter, through the adapter's own RPC."""
    webhook = webhooks_pb2.Webhook(
        name="to mesh-adapter",
        type=webhooks_pb2.WEBHOOK_TYPE_OUTGOING,
        url=receiver_url(mesh),
        events=events,
        active=True,
    )
    if secret:
        webhook.authentication.CopyFrom(common_pb2.Authentication(type="hmac", secret=secret))
    if token:
        webhook.headers["Authorization"] = f"Bearer {token}"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.grpc_port}") as channel:
        await webhooks_pb2_grpc.WebhookServiceStub(channel).CreateWebhook(
            webhooks_pb2.CreateWebhookRequest(webhook=webhook), timeout=5
        )


async def test_documented_body_reaches_kafka_and_its_replay_publishes_nothing(
    documented_sim: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    mesh = await start_mesh(
        documented_sim,
        tmp_path,
        prefix,
        tracer_provider,
        secrets=[WEBHOOK_SECRET],
        require_timestamp=False,
    )
    try:
        await outgoing_webhook(mesh, ["automation.triggered"], secret=WEBHOOK_SECRET)
        [triggered] = await documented_sim.generate_events("octospine", "automation.triggered")
        [delivery] = documented_sim.webhook_deliveries
        assert set(orjson.loads(delivery.body)) == {"event", "data"}  # no id, no timestamp
        await wait_until(lambda: delivery.state == "delivered", within=10, what="the delivery")
        topic = f"{prefix}octospine.automation.triggered"
        [record] = await consume_all(BOOTSTRAP, topic, expected=1)
        event = octo_events.AutomationTriggeredEvent.FromString(record.value)
        assert event.automation_id == triggered["automation_id"]
        h = headers(record)
        assert h["ce_type"] == "com.octospine.automation.triggered" and h["ce_specversion"] == "1.0"
        assert event.event_id == delivery.id  # the delivery id came from x-octospine-delivery

        # A replay of the captured delivery (same body, signature and id) is acknowledged
        # and publishes nothing.
        async with httpx.AsyncClient() as client:
            replay = await client.post(receiver_url(mesh), content=delivery.body, headers=delivery.headers)
        assert (replay.status_code, replay.json()["status"]) == (200, "duplicate")
        [second] = await documented_sim.generate_events("octospine", "automation.triggered")
        records = await consume_all(BOOTSTRAP, topic, expected=2)
        assert len(records) == 2
        assert (
            octo_events.AutomationTriggeredEvent.FromString(records[-1].value).automation_id
            == (second["automation_id"])
        )
    finally:
        await mesh.stop(0)


async def test_documented_body_is_refused_by_default(
    documented_sim: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    mesh = await start_mesh(documented_sim, tmp_path, prefix, tracer_provider, secrets=[WEBHOOK_SECRET])
    try:
        await outgoing_webhook(mesh, ["automation.triggered"], secret=WEBHOOK_SECRET)
        await documented_sim.generate_events("octospine", "automation.triggered")
        [delivery] = documented_sim.webhook_deliveries
        await wait_until(lambda: delivery.state == "failed", within=10, what="the vendor to give up")
        assert [a.status for a in delivery.attempts] == [401, 401, 401]
        assert mesh.events is not None and mesh.events.webhook is not None
        assert mesh.events.webhook.counts["MISSING_TIMESTAMP"] == 3
    finally:
        await mesh.stop(0)


async def test_task_failed_gets_its_own_topic(
    documented_sim: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    mesh = await start_mesh(
        documented_sim,
        tmp_path,
        prefix,
        tracer_provider,
        secrets=[WEBHOOK_SECRET],
        require_timestamp=False,
    )
    try:
        await outgoing_webhook(mesh, ["task.failed", "task.completed"], secret=WEBHOOK_SECRET)
        parameters = struct_pb2.Struct()
        parameters.update({"simulate_failure": True})
        async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.grpc_port}") as channel:
            task = await tasks_pb2_grpc.TaskServiceStub(channel).CreateTask(
                tasks_pb2.CreateTaskRequest(
                    task=tasks_pb2.Task(name="doomed", type="data_sync", parameters=parameters)
                ),
                timeout=5,
            )
        [record] = await consume_all(BOOTSTRAP, f"{prefix}octospine.task.failed", expected=1)
        event = octo_events.TaskFailedEvent.FromString(record.value)
        assert event.task.id == task.id and record.key == task.id.encode()
        assert event.task.status == tasks_pb2.TASK_STATUS_FAILED
        assert event.task.error == "simulated failure"
        h = headers(record)
        assert h["ce_type"] == "com.octospine.task.failed"
        assert h["ce_id"] == f"octospine:task.failed:{task.id}"
        assert mesh.events is not None
        assert mesh.events.intake.stats.dead_lettered == {}  # not a dead letter any more
    finally:
        await mesh.stop(0)


async def test_shared_token_mode_end_to_end(
    documented_sim: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    """The guide's outgoing webhook: static `headers`, no secret, `{event, data}`."""
    mesh = await start_mesh(
        documented_sim,
        tmp_path,
        prefix,
        tracer_provider,
        auth="token",
        tokens=[TOKEN],
        require_timestamp=False,
    )
    try:
        await outgoing_webhook(mesh, ["automation.triggered"], token=TOKEN)
        [triggered] = await documented_sim.generate_events("octospine", "automation.triggered")
        [delivery] = documented_sim.webhook_deliveries
        assert "x-octospine-signature" not in delivery.headers  # the vendor signs nothing here
        [record] = await consume_all(BOOTSTRAP, f"{prefix}octospine.automation.triggered", expected=1)
        assert (
            octo_events.AutomationTriggeredEvent.FromString(record.value).automation_id
            == (triggered["automation_id"])
        )
        assert delivery.attempts[0].status == 200
    finally:
        await mesh.stop(0)


def _sig(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _body(marker: str) -> bytes:
    return orjson.dumps(
        {"event": "automation.triggered", "data": {"automation_id": marker, "trigger_type": "webhook"}}
    )


# (case, mode, headers(body) -> headers, expected status, expected code)
MATRIX: list[tuple[str, str, Any, int, str]] = [
    ("signature: none", "signature", lambda b: {}, 401, "MISSING_SIGNATURE"),
    (
        "signature: wrong secret",
        "signature",
        lambda b: {"x-octospine-signature": _sig(b, "x")},
        401,
        "BAD_SIGNATURE",
    ),
    (
        "signature: other body",
        "signature",
        lambda b: {"x-octospine-signature": _sig(b"{}")},
        401,
        "BAD_SIGNATURE",
    ),
    (
        "signature: non-ASCII",
        "signature",
        lambda b: {"x-octospine-signature": "sha256=é".encode()},
        401,
        "BAD_SIGNATURE",
    ),
    (
        "signature: a token",
        "signature",
        lambda b: {"Authorization": f"Bearer {TOKEN}"},
        401,
        "MISSING_SIGNATURE",
    ),
    ("token: none", "token", lambda b: {}, 401, "MISSING_TOKEN"),
    ("token: wrong", "token", lambda b: {"Authorization": "Bearer guessed"}, 401, "BAD_TOKEN"),
    ("token: prefix of it", "token", lambda b: {"Authorization": f"Bearer {TOKEN[:-1]}"}, 401, "BAD_TOKEN"),
    ("token: other scheme", "token", lambda b: {"Authorization": f"Basic {TOKEN}"}, 401, "BAD_TOKEN"),
    ("token: non-UTF-8", "token", lambda b: {"Authorization": b"Bearer \xff\xfe"}, 401, "BAD_TOKEN"),
    ("token: a signature", "token", lambda b: {"x-octospine-signature": _sig(b)}, 401, "MISSING_TOKEN"),
]
GOOD = {
    "signature": lambda b: {"x-octospine-signature": _sig(b)},
    "token": lambda b: {"Authorization": f"Bearer {TOKEN}"},
}


@pytest.mark.parametrize("mode", ["signature", "token"])
async def test_rejection_matrix_end_to_end(
    mode: str, simulator: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    """Each refused delivery gets its 401 and code and publishes nothing (not even a
    dead letter); the authentic one after them reaches its topic."""
    auth: dict[str, Any] = (
        {"secrets": [WEBHOOK_SECRET]} if mode == "signature" else {"auth": "token", "tokens": [TOKEN]}
    )
    mesh = await start_mesh(simulator, tmp_path, prefix, tracer_provider, require_timestamp=False, **auth)
    try:
        async with httpx.AsyncClient() as client:
            for case, case_mode, make_headers, status, code in MATRIX:
                if case_mode != mode:
                    continue
                body = _body(f"refused {case}")
                answer = await client.post(receiver_url(mesh), content=body, headers=make_headers(body))
                assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), case
            body = _body("aut_accepted")
            good = await client.post(receiver_url(mesh), content=body, headers=GOOD[mode](body))
            assert (good.status_code, good.json()["status"]) == (200, "accepted")
        records = await consume_all(BOOTSTRAP, f"{prefix}octospine.automation.triggered", expected=1)
        assert [r.key for r in records] == [b"aut_accepted"]
        assert mesh.events is not None
        assert mesh.events.intake.stats.dead_lettered == {}  # refused, not dead-lettered
    finally:
        await mesh.stop(0)


async def test_no_token_configured_answers_503(
    simulator: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    mesh = await start_mesh(simulator, tmp_path, prefix, tracer_provider, auth="token")
    try:
        async with httpx.AsyncClient() as client:
            body = _body("x")
            answer = await client.post(
                receiver_url(mesh), content=body, headers={"Authorization": "Bearer x"}
            )
        assert answer.status_code == 503 and answer.headers["retry-after"] == "60"
        assert answer.json()["error"]["code"] == "NO_TOKEN_CONFIGURED"
    finally:
        await mesh.stop(0)


async def test_fire_incoming_webhook_triggers_the_automation(
    simulator: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    """The guide's external-event endpoint, fired through gRPC: the automation
    listening on it runs, and its `automation.triggered` webhook comes back onto Kafka."""
    mesh = await start_mesh(simulator, tmp_path, prefix, tracer_provider, secrets=[WEBHOOK_SECRET])
    try:
        await outgoing_webhook(mesh, ["automation.triggered"], secret=WEBHOOK_SECRET)
        payload = struct_pb2.Struct()
        payload.update({"external_id": "ext-42", "event_type": "order.created"})
        async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.grpc_port}") as channel:
            stub = webhooks_pb2_grpc.WebhookServiceStub(channel)
            fired = await stub.FireIncomingWebhook(
                webhooks_pb2.FireIncomingWebhookRequest(endpoint="external-event", payload=payload), timeout=5
            )
            assert list(fired.triggered) == ["aut_0001"]
            [call] = simulator.find_requests(vendor="octospine", path="/webhooks/external-event")
            assert call.method == "POST" and orjson.loads(call.body) == {
                "external_id": "ext-42",
                "event_type": "order.created",
            }
            with pytest.raises(grpc.aio.AioRpcError) as nobody:
                await stub.FireIncomingWebhook(
                    webhooks_pb2.FireIncomingWebhookRequest(endpoint="nobody-listens"), timeout=5
                )
            assert nobody.value.code() == grpc.StatusCode.NOT_FOUND
            # An incoming webhook registered with an HMAC secret needs a signature the
            # adapter does not make: the upstream's 401 is the adapter's problem
            # (docs/errors.md: INTERNAL, UPSTREAM_CREDENTIALS_REJECTED), with the vendor's words.
            with pytest.raises(grpc.aio.AioRpcError) as signed:
                await stub.FireIncomingWebhook(
                    webhooks_pb2.FireIncomingWebhookRequest(endpoint="external-system"), timeout=5
                )
            assert signed.value.code() == grpc.StatusCode.INTERNAL
            assert "x-octospine-signature" in (signed.value.details() or "")
        [record] = await consume_all(BOOTSTRAP, f"{prefix}octospine.automation.triggered", expected=1)
        event = octo_events.AutomationTriggeredEvent.FromString(record.value)
        assert event.automation_id == "aut_0001" and event.trigger_type == "webhook"
        assert dict(event.payload) == {"external_id": "ext-42", "event_type": "order.created"}
    finally:
        await mesh.stop(0)
