"""Hostile vendor input end to end (issue 7): poison WebSocket frames, poison records
read by backfill, poison webhook bodies. Each is dead-lettered with its reason, the
stream goes on, health stays SERVING, and the next normal event reaches its topic.

The simulator's admin API pushes the raw frames, stores the raw records and signs
the raw webhook bodies, so nothing test-only lives in the adapter.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest
from grpc_health.v1 import health_pb2
from octospine.v1 import common_pb2, webhooks_pb2, webhooks_pb2_grpc
from octospine.v1 import events_pb2 as octo_events
from openframe.v1 import events_pb2 as of_events

from adapter.runtime import MeshAdapter
from simulator import Simulator

from .kafka_fixtures import BOOTSTRAP, consume_all, wait_until
from .mesh_fixtures import WEBHOOK_SECRET, headers, health_of

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = pytest.mark.usefixtures("kafka_bootstrap")

SERVING = health_pb2.HealthCheckResponse.SERVING


def nested_json(depth: int) -> str:
    """``{"a":{"a":...{"leaf":1}...}}`` as text: deeper than orjson or json would build."""
    return '{"a":' * depth + '{"leaf":1}' + "}" * depth


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def alert_frame(alert_id: str, *, metadata: str = "{}", created_at: str | None = None) -> str:
    stamp = now()
    alert = (
        f'{{"id":"{alert_id}","title":"poison","severity":"high","status":"open",'
        f'"device_id":"dev_001","created_at":"{created_at or stamp}","updated_at":"{stamp}",'
        f'"metadata":{metadata}}}'
    )
    return f'{{"type":"alert","action":"created","id":"evt_{alert_id}","timestamp":"{stamp}","data":{alert}}}'


async def admin(sim_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=sim_url) as client:
        answer = await client.post(path, json=body)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result


def dead_letters(records: list[Any], source: str) -> dict[str, dict[str, str]]:
    """Dead-letter records of ``source`` keyed by their event id or detail."""
    return {headers(r)["dlq_detail"]: headers(r) for r in records if headers(r)["dlq_source"] == source}


async def test_poison_websocket_frames_are_dead_lettered_and_the_stream_goes_on(
    mesh: MeshAdapter, simulator: Simulator, prefix: str
) -> None:
    assert mesh.events is not None
    source = mesh.events.sources["openframe"]
    frames = [
        alert_frame("alt_deep", metadata=nested_json(700)),  # RecursionError once
        alert_frame("alt_year1", created_at="0001-01-01T00:00:00+05:00"),  # OverflowError once
        alert_frame("alt_deep40", metadata=nested_json(40)),  # builds, but no consumer could parse it
        "not json at all \xff",
        "[1, 2, 3]",
        '{"type": 7}',
    ]
    for text in frames:
        pushed = await admin(simulator.openframe_url, "/_sim/ws/push", {"text": text})
        assert pushed == {"pushed": 1}
    # The next normal alert, after the poison, on its topic.
    [alert] = await simulator.generate_events("openframe", "alert")
    records = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=1)
    assert [r.key for r in records] == [alert["id"].encode()]
    assert of_events.AlertEvent.FromString(records[0].value).alert.id == alert["id"]

    letters = await consume_all(BOOTSTRAP, f"{prefix}meshadapter.deadletter", expected=len(frames))
    assert len(letters) == len(frames)
    by_type = [headers(r) for r in letters]
    assert all(h["dlq_source"] == "openframe" and h["dlq_channel"] == "websocket" for h in by_type)
    details = " | ".join(h["dlq_detail"] for h in by_type)
    assert "nesting" in details and "depth" in details  # the 700-deep and 40-deep ones
    assert "0001-01-01" in details or "out of range" in details
    assert {h["dlq_reason"] for h in by_type} <= {"MALFORMED_EVENT", "MALFORMED_FRAME", "UNKNOWN_EVENT_TYPE"}

    assert source.state.value == "streaming" and source.counts["reconnects"] == 0
    assert await health_of(mesh.grpc_port, "meshadapter.events.openframe") == SERVING


async def test_poison_records_read_by_backfill_are_dead_lettered(
    mesh: MeshAdapter, simulator: Simulator, prefix: str
) -> None:
    assert mesh.events is not None
    source = mesh.events.sources["openframe"]
    # A first event sets the watermark, so a reconnect backfills from it.
    await simulator.generate_events("openframe", "alert")
    await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=1)
    await wait_until(
        lambda: mesh.events is not None and mesh.events.watermarks.get("openframe") is not None,
        within=10,
        what="a watermark",
    )
    stamp = now()
    for record in (
        {"id": "alt_bf_year1", "title": "x", "severity": "high", "status": "open"}
        | {"created_at": "0001-01-01T00:00:00+05:00", "updated_at": stamp},
        {"id": "alt_bf_deep", "title": "x", "severity": "high", "status": "open"}
        | {"created_at": stamp, "updated_at": stamp, "metadata": orjson.loads(nested_json(120))},
    ):
        await admin(simulator.openframe_url, "/_sim/records", {"collection": "alerts", "record": record})
    good = simulator.openframe.alerts.create({"title": "after poison", "severity": "low"})
    simulator.ws_drop("openframe")
    await wait_until(lambda: source.counts["reconnects"] >= 1, within=10, what="the drop")
    await wait_until(source.streaming.is_set, within=20, what="streaming again after backfill")

    records = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=2, within=30)
    assert good["id"].encode() in {r.key for r in records}
    letters = await consume_all(BOOTSTRAP, f"{prefix}meshadapter.deadletter", expected=2, within=30)
    backfilled = [headers(r) for r in letters if headers(r)["dlq_channel"] == "backfill"]
    assert len(backfilled) == 2, [h["dlq_detail"] for h in backfilled]
    assert all(h["dlq_reason"] == "MALFORMED_EVENT" for h in backfilled)
    assert source.counts["backfill_failures"] == 0  # the poison did not fail the backfill
    assert await health_of(mesh.grpc_port, "meshadapter.events.openframe") == SERVING


async def test_poison_webhook_bodies_are_acknowledged_and_dead_lettered(
    mesh: MeshAdapter, simulator: Simulator, prefix: str
) -> None:
    assert mesh.events is not None and mesh.events.webhook is not None
    url = f"http://127.0.0.1:{mesh.events.webhook.port}/webhooks/octospine"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.grpc_port}") as channel:
        await webhooks_pb2_grpc.WebhookServiceStub(channel).CreateWebhook(
            webhooks_pb2.CreateWebhookRequest(
                webhook=webhooks_pb2.Webhook(
                    name="to mesh-adapter",
                    type=webhooks_pb2.WEBHOOK_TYPE_OUTGOING,
                    url=url,
                    events=["task.completed", "automation.triggered"],
                    active=True,
                    authentication=common_pb2.Authentication(type="hmac", secret=WEBHOOK_SECRET),
                )
            ),
            timeout=5,
        )
    stamp = now()
    bodies = [
        f'{{"id":"whd_deep","event":"task.completed","timestamp":"{stamp}","data":{nested_json(700)}}}',
        f'{{"id":"whd_year1","event":"task.completed","timestamp":"{stamp}",'
        '"data":{"task_id":"tsk_1","completed_at":"0001-01-01T00:00:00+05:00"}}',
        f'{{"id":"whd_array","event":"task.completed","timestamp":"{stamp}","data":[1,2]}}',
        f'{{"id":"whd_noevent","timestamp":"{stamp}","data":{{}}}}',
        f'{{"id":"whd_badevent","event":{{"x":1}},"timestamp":"{stamp}","data":{{}}}}',
        "[1,2]",
        "not json",
    ]
    for body in bodies:
        answer = await admin(
            simulator.octospine_url, "/_sim/webhooks/emit", {"event": "task.completed", "raw": body}
        )
        assert len(answer["deliveries"]) == 1
    # Signed and delivered once each: the vendor got a 2xx and will not redeliver.
    await wait_until(
        lambda: (
            len(simulator.webhook_deliveries) == len(bodies)
            and all(d.state == "delivered" for d in simulator.webhook_deliveries)
        ),
        within=15,
        what="every poison delivery acknowledged",
    )
    assert all(len(d.attempts) == 1 for d in simulator.webhook_deliveries)
    letters = await consume_all(BOOTSTRAP, f"{prefix}meshadapter.deadletter", expected=len(bodies))
    webhook_letters = [headers(r) for r in letters if headers(r)["dlq_channel"] == "webhook"]
    assert len(webhook_letters) == len(bodies)
    assert all(h["dlq_source"] == "octospine" for h in webhook_letters)

    # Unauthentic input is a 4xx, never a 500: non-ASCII and non-UTF-8 signature headers.
    async with httpx.AsyncClient() as client:
        for value in ("sha256=é".encode(), b"\xff\xfe", b"sha256=" + b"\x80" * 64):
            answer = await client.post(url, content=b"{}", headers=[(b"x-octospine-signature", value)])
            assert answer.status_code == 401, answer.text

    # The next normal delivery still reaches its topic.
    [triggered] = await simulator.generate_events("octospine", "automation.triggered")
    records = await consume_all(BOOTSTRAP, f"{prefix}octospine.automation.triggered", expected=1)
    event = octo_events.AutomationTriggeredEvent.FromString(records[0].value)
    assert event.automation_id == triggered["automation_id"]


async def test_dead_letters_and_the_spool_never_hold_a_redacted_field(
    mesh: MeshAdapter, simulator: Simulator, prefix: str, tmp_path: Path
) -> None:
    secret = "hunter2-" + prefix
    frames = [
        # A type nobody routes, carrying an integration with its password (debug_redact).
        {"type": "integration.updated", "id": "evt_i1", "data": {"configuration": {"password": secret}}},
        # A routed type whose payload does not decode, with secrets in free-form keys.
        {
            "type": "alert",
            "id": "evt_i2",
            "data": {"id": 42, "metadata": {"api_key": secret, "token": secret}},
        },
    ]
    for frame in frames:
        assert await admin(simulator.openframe_url, "/_sim/ws/push", {"frame": frame}) == {"pushed": 1}
    # Not JSON and not redactable field by field: withheld, because it names a secret.
    text = 'garbage {"password": "' + secret + '"'
    assert await admin(simulator.openframe_url, "/_sim/ws/push", {"text": text}) == {"pushed": 1}
    letters = await consume_all(BOOTSTRAP, f"{prefix}meshadapter.deadletter", expected=3)
    assert len(letters) == 3
    for record in letters:
        assert secret.encode() not in record.value
        assert secret not in str(record.headers)
    values = {v.get("id", "withheld"): v for v in (orjson.loads(r.value) for r in letters)}
    assert values["evt_i1"]["data"]["configuration"] == "[REDACTED]"
    assert values["evt_i2"]["data"]["metadata"] == {"api_key": "[REDACTED]", "token": "[REDACTED]"}
    assert "sha256" in values["withheld"]
    spool_dir = tmp_path / "spool"
    for path in spool_dir.iterdir():
        assert secret.encode() not in path.read_bytes(), path.name
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o600, path.name
    assert spool_dir.stat().st_mode & 0o777 == 0o700
