"""OCTOSPINE REST: health, the five resources, task runs and cancellation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from simulator import Simulator, sign

# base path, valid create payload, patch, invalid payload, field named by the 422
RESOURCES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str]] = [
    (
        "/api/pipelines",
        {
            "name": "P",
            "source": {"type": "api", "endpoint": "https://x.example/data"},
            "transformations": [{"type": "clean", "parameters": {"removeNulls": True}}],
            "destination": {"type": "database", "table": "t"},
            "schedule": {"type": "cron", "value": "0 */6 * * *"},
        },
        {"status": "paused"},
        {"name": "P", "transformations": [{"parameters": {}}]},
        "transformations[0].type",
    ),
    (
        "/api/automations",
        {
            "name": "A",
            "triggers": [{"type": "webhook", "endpoint": "/webhooks/a", "method": "POST"}],
            "steps": [{"name": "s", "type": "transform", "parameters": {"mapping": {}}}],
        },
        {"status": "disabled"},
        {"name": "A", "status": "off"},
        "status",
    ),
    (
        "/api/integrations",
        {"type": "database", "name": "DB", "configuration": {"host": "h", "password": "p"}},
        {"configuration": {"password": "rotated"}},
        {"type": "database"},
        "name",
    ),
    (
        "/api/webhooks",
        {"name": "W", "type": "outgoing", "url": "http://127.0.0.1:1/h", "events": ["alert.new"]},
        {"active": False},
        {"name": "W", "type": "outgoing"},
        "url",
    ),
]


@pytest.mark.parametrize(("base", "payload", "patch", "invalid", "field"), RESOURCES)
async def test_resource_crud(
    octospine: httpx.AsyncClient,
    base: str,
    payload: dict[str, Any],
    patch: dict[str, Any],
    invalid: dict[str, Any],
    field: str,
) -> None:
    created = await octospine.post(base, json=payload)
    assert created.status_code == 201, created.text
    resource = created.json()
    item = f"{base}/{resource['id']}"
    assert {k: resource[k] for k in payload} == payload
    assert (await octospine.get(item)).json() == resource

    listed = (await octospine.get(base, params={"per_page": 100})).json()["data"]
    assert listed[-1] == resource  # oldest first, so the new one is last

    patched = await octospine.patch(item, json=patch)
    assert patched.status_code == 200
    assert patched.json()["name"] == resource["name"]

    rejected = await octospine.post(base, json=invalid)
    assert rejected.status_code == 422
    error = rejected.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert [d["field"] for d in error["details"]] == [field]

    assert (await octospine.delete(item)).status_code == 204
    gone = await octospine.get(item)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "NOT_FOUND"
    assert (await octospine.delete(item)).status_code == 404


async def test_patch_is_a_json_merge_patch(octospine: httpx.AsyncClient) -> None:
    patched = await octospine.patch(
        "/api/integrations/int_0001",
        json={"configuration": {"password": "rotated", "port": None}, "status": "inactive"},
    )
    configuration = patched.json()["configuration"]
    assert configuration["password"] == "rotated"
    assert "port" not in configuration
    assert configuration["host"] == "db.example.internal"
    assert patched.json()["status"] == "inactive"


async def test_health(octospine: httpx.AsyncClient, sim: Simulator) -> None:
    health = (await octospine.get("/api/health")).json()
    assert health["status"] == "healthy"
    assert set(health["components"]) >= {"database", "queue"}
    sim.octospine.health.set_component("queue", "degraded", "lagging")
    degraded = (await octospine.get("/api/health")).json()
    assert degraded["status"] == "degraded"
    assert degraded["components"]["queue"]["message"] == "lagging"


@pytest.mark.parametrize(
    ("params", "field"), [({"status": "completed"}, "status"), ({"type": "report"}, "type")]
)
async def test_task_filters(
    octospine: httpx.AsyncClient, sim: Simulator, params: dict[str, str], field: str
) -> None:
    data = (await octospine.get("/api/tasks", params=params)).json()["data"]
    expected = [t["id"] for t in sim.state.octospine.tasks if t[field] == params[field]]
    assert expected and [t["id"] for t in data] == expected


async def test_task_runs_to_completion(octospine: httpx.AsyncClient, sim: Simulator) -> None:
    created = await octospine.post(
        "/api/tasks",
        json={"name": "Sync", "type": "data_sync", "schedule": {"type": "interval", "value": 60}},
    )
    task = created.json()
    assert (task["status"], task["progress"]) == ("pending", 0)
    await sim.wait_for(lambda: sim.state.octospine.tasks.get(task["id"])["status"] == "completed")
    done = (await octospine.get(f"/api/tasks/{task['id']}")).json()
    assert done["progress"] == 100
    assert done["result"]["records_processed"] > 0
    assert done["started_at"] <= done["completed_at"]
    progress = [e["data"] for e in sim.events("octospine") if e["type"] == "task.progress"]
    assert progress[0]["status"] == "pending"
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
    assert progress[-1] == {"task_id": task["id"], "status": "completed", "progress": 100}


async def test_task_simulated_failure(octospine: httpx.AsyncClient, sim: Simulator) -> None:
    task = (
        await octospine.post(
            "/api/tasks", json={"name": "F", "type": "x", "parameters": {"simulate_failure": True}}
        )
    ).json()
    await sim.wait_for(lambda: sim.state.octospine.tasks.get(task["id"])["status"] == "failed")
    assert sim.state.octospine.tasks.get(task["id"])["error"] == "simulated failure"


async def test_task_cancel(octospine: httpx.AsyncClient, sim: Simulator) -> None:
    task = (await octospine.post("/api/tasks", json={"name": "C", "type": "x"})).json()
    cancelled = await octospine.post(f"/api/tasks/{task['id']}/cancel", json={"reason": "test"})
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await octospine.post(f"/api/tasks/{task['id']}/cancel")
    assert again.status_code == 200  # cancelling twice is harmless
    assert task["id"] not in sim.octospine.tasks.runner.running  # type: ignore[union-attr]

    completed = await octospine.post("/api/tasks/tsk_0001/cancel")  # seeded, completed
    assert completed.status_code == 409
    assert completed.json()["error"]["code"] == "CONFLICT"
    failed = await octospine.post("/api/tasks/tsk_0002/cancel")  # seeded, failed
    assert failed.status_code == 409
    missing = await octospine.post("/api/tasks/tsk_9999/cancel")
    assert missing.status_code == 404


async def test_task_delete_stops_its_run(octospine: httpx.AsyncClient, sim: Simulator) -> None:
    task = (await octospine.post("/api/tasks", json={"name": "D", "type": "x"})).json()
    assert (await octospine.delete(f"/api/tasks/{task['id']}")).status_code == 204
    assert task["id"] not in sim.octospine.tasks.runner.running  # type: ignore[union-attr]
    assert (await octospine.patch(f"/api/tasks/{task['id']}", json={})).status_code == 405


async def test_tasks_updated_after(octospine: httpx.AsyncClient) -> None:
    newest = (await octospine.get("/api/tasks")).json()["data"][-1]
    response = await octospine.get("/api/tasks", params={"updated_after": newest["updated_at"]})
    assert response.json()["data"] == []


async def test_incoming_webhook_triggers_automation(octospine: httpx.AsyncClient, sim: Simulator) -> None:
    response = await octospine.post("/webhooks/external-event", json={"external_id": "e1"})
    assert response.status_code == 202
    assert response.json() == {"triggered": ["aut_0001"]}
    event = sim.events("octospine")[-1]
    assert event["type"] == "automation.triggered"
    assert event["data"] == {
        "automation_id": "aut_0001",
        "trigger_type": "webhook",
        "payload": {"external_id": "e1"},
    }
    assert (await octospine.post("/webhooks/nobody-listens", json={})).status_code == 404


async def test_incoming_webhook_with_secret_needs_signature(
    octospine: httpx.AsyncClient, sim: Simulator
) -> None:
    await octospine.patch(
        "/api/automations/aut_0001",
        json={"triggers": [{"type": "webhook", "endpoint": "/webhooks/external-system"}]},
    )
    body = b'{"external_id": "e2"}'
    unsigned = await octospine.post("/webhooks/external-system", content=body)
    assert unsigned.status_code == 401
    signature = sign("incoming-webhook-secret", body)
    signed = await octospine.post(
        "/webhooks/external-system", content=body, headers={"x-octospine-signature": signature}
    )
    assert signed.status_code == 202
