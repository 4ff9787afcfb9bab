"""Webhook deliveries behind a load balancer: any replica receives them, and a
redelivery that lands on another replica is only the same event again (same
ce_id, same payload) on Kafka."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider

from adapter.runtime import MeshAdapter
from simulator import Simulator

from ..events.kafka_fixtures import BOOTSTRAP, consume_all, delete_topics_with_prefix
from ..events.mesh_fixtures import WEBHOOK_SECRET, mesh_settings

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = [pytest.mark.usefixtures("kafka_bootstrap"), pytest.mark.timeout(90)]


@pytest_asyncio.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}."
    yield name
    await delete_topics_with_prefix(BOOTSTRAP, name)


@pytest_asyncio.fixture
async def replicas(
    simulator: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> AsyncIterator[list[MeshAdapter]]:
    started: list[MeshAdapter] = []
    try:
        for name in ("a", "b"):
            settings = mesh_settings(
                simulator,
                tmp_path / name,
                prefix,
                coordination={"enabled": True, "replica_id": name, "session_timeout_seconds": 6},
            )
            adapter = MeshAdapter(settings, tracer_provider=tracer_provider)
            await adapter.start()
            started.append(adapter)
        yield started
    finally:
        for adapter in started:
            await adapter.stop(0)


def delivery(delivery_id: str) -> tuple[bytes, dict[str, str]]:
    when = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    data = {"id": "tsk_0100", "name": "Database Sync", "type": "data_sync", "status": "completed"}
    raw = orjson.dumps({"id": delivery_id, "event": "task.completed", "timestamp": when, "data": data})
    signature = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"x-octospine-signature": f"sha256={signature}", "content-type": "application/json"}


async def test_a_redelivery_to_another_replica_is_the_same_event(
    replicas: list[MeshAdapter], prefix: str
) -> None:
    raw, headers = delivery("whd_replicated")
    async with httpx.AsyncClient() as client:
        for adapter in replicas:  # the first attempt's answer was lost; the vendor retried elsewhere
            assert adapter.events is not None and adapter.events.webhook is not None
            url = f"http://127.0.0.1:{adapter.events.webhook.port}/webhooks/octospine"
            answer = await client.post(url, content=raw, headers=headers)
            assert answer.status_code == 200, answer.text
    records = await consume_all(BOOTSTRAP, f"{prefix}octospine.task.completed", expected=2, within=30)
    assert len(records) == 2  # one per replica: each spools what it receives
    assert len({dict(r.headers)["ce_id"] for r in records}) == 1
    assert len({r.value for r in records}) == 1
