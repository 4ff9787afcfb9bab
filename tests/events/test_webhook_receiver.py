"""The webhook receiver over real HTTP, with a real spool: what OCTOSPINE's
deliveries get back, and what reaches the spool (no Kafka needed here)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio
from pydantic import SecretStr

from adapter.config.settings import EventsSettings, WebhookSettings
from adapter.events.encoding import EventEncoder
from adapter.events.intake import EventIntake
from adapter.events.routing import EventRouter, load_event_routes
from adapter.events.spool import EventSpool
from adapter.events.webhook_receiver import WebhookReceiver
from adapter.events.webhook_verifier import WebhookVerifier
from adapter.transcoding.json_codec import JsonCodec

SECRET = "whsec-receiver-test"


def body(
    delivery_id: str,
    event: str = "task.completed",
    *,
    task: str = "tsk_0001",
    age_s: float = 0,
    size: int = 0,
) -> bytes:
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)).isoformat().replace("+00:00", "Z")
    data = {
        "id": task,
        "name": "Database Sync",
        "type": "data_sync",
        "status": "completed",
        "pad": "x" * size,
    }
    return orjson.dumps({"id": delivery_id, "event": event, "timestamp": when, "data": data})


def sign(raw: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"x-octospine-signature": "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()}


async def _receiver(tmp_path: Path, *, max_records: int) -> tuple[WebhookReceiver, EventSpool]:
    spool = EventSpool(tmp_path / "spool.db", max_records=max_records)
    await spool.start()
    encoder = EventEncoder(EventRouter(load_event_routes(EventsSettings())), JsonCodec(), source_uris={})
    receiver = WebhookReceiver(
        WebhookSettings(port=0, secrets=[SecretStr(SECRET)], max_body_bytes=4096),
        intake=EventIntake(encoder, spool),
        verifier=WebhookVerifier([SecretStr(SECRET)], tolerance_seconds=300),
    )
    await receiver.start()
    return receiver, spool


@pytest_asyncio.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, EventSpool]]:
    receiver, spool = await _receiver(tmp_path, max_records=100)
    base = f"http://127.0.0.1:{receiver.port}"
    async with httpx.AsyncClient(base_url=base) as client:
        yield client, spool
    await receiver.stop()
    await spool.stop()


async def test_accepts_once_and_acknowledges_redeliveries(
    endpoint: tuple[httpx.AsyncClient, EventSpool],
) -> None:
    client, spool = endpoint
    raw = body("whd_1")
    first = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))
    again = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))  # vendor redelivery
    assert (first.status_code, first.json()["status"]) == (200, "accepted")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    [(_, record)] = await spool.pending(10)  # durable before the 200, and only once
    assert record.topic == "octospine.task.completed" and record.key == b"tsk_0001"


REJECTED = [
    ("no signature", body("whd_2"), {}, 401, "MISSING_SIGNATURE"),
    ("bad signature", body("whd_3"), {"x-octospine-signature": "sha256=" + "0" * 64}, 401, "BAD_SIGNATURE"),
    ("retired secret", body("whd_4"), sign(body("whd_4"), "old-secret"), 401, "BAD_SIGNATURE"),
    ("replayed (stale)", body("whd_5", age_s=600), None, 401, "STALE_TIMESTAMP"),
    ("oversize", body("whd_6", size=8000), None, 413, "BODY_TOO_LARGE"),
]


@pytest.mark.parametrize(("case", "raw", "headers", "status", "code"), REJECTED, ids=[r[0] for r in REJECTED])
async def test_rejections(endpoint, case, raw, headers, status, code) -> None:  # type: ignore[no-untyped-def]
    client, spool = endpoint
    answer = await client.post(
        "/webhooks/octospine", content=raw, headers=sign(raw) if headers is None else headers
    )
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert spool.depth == 0


async def test_unknown_event_is_dead_lettered_and_acknowledged(
    endpoint: tuple[httpx.AsyncClient, EventSpool],
) -> None:
    client, spool = endpoint
    raw = body("whd_7", event="pipeline.exploded")
    answer = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))
    assert (answer.status_code, answer.json()["status"]) == (200, "dead_lettered")
    [(_, record)] = await spool.pending(10)
    assert record.topic == "meshadapter.deadletter" and record.value == raw


async def test_full_spool_answers_503_with_retry_after(tmp_path: Path) -> None:
    receiver, spool = await _receiver(tmp_path, max_records=1)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}") as client:
            one, two = body("whd_8", task="tsk_0008"), body("whd_9", task="tsk_0009")
            assert (
                await client.post("/webhooks/octospine", content=one, headers=sign(one))
            ).status_code == 200
            full = await client.post("/webhooks/octospine", content=two, headers=sign(two))
        assert full.status_code == 503
        assert int(full.headers["retry-after"]) > 0
        assert full.json()["error"]["code"] == "SPOOL_FULL"
    finally:
        await receiver.stop()
        await spool.stop()
