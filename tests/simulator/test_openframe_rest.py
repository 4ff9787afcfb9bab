"""OpenFrame REST: devices, alerts, security events against a running simulator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from simulator import Simulator, SimulatorConfig


async def test_devices_list_first_page_and_total(openframe: httpx.AsyncClient) -> None:
    response = await openframe.get("/v1/devices")
    assert response.status_code == 200
    body = response.json()
    assert body["meta"] == {"page": 1, "per_page": 10, "total": 25}
    assert [d["id"] for d in body["data"]][:3] == ["dev_001", "dev_002", "dev_003"]
    assert response.headers["X-Request-Id"].startswith("req_")


async def test_device_get_and_unknown_id(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    response = await openframe.get("/v1/devices/dev_007")
    assert response.status_code == 200
    assert response.json() == sim.state.openframe.devices.get("dev_007")

    missing = await openframe.get("/v1/devices/dev_999")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert missing.json()["request_id"] == missing.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "online"}, "status"),
        ({"type": "server"}, "type"),
        ({"organization_id": "org_002"}, "organization_id"),
    ],
)
async def test_device_filters(
    openframe: httpx.AsyncClient, sim: Simulator, params: dict[str, str], field: str
) -> None:
    response = await openframe.get("/v1/devices", params={**params, "per_page": 100})
    data = response.json()["data"]
    expected = [d["id"] for d in sim.state.openframe.devices if d[field] == params[field]]
    assert expected, "seed data should cover the filter"
    assert [d["id"] for d in data] == expected


async def test_invalid_enum_filter_is_400_naming_the_parameter(openframe: httpx.AsyncClient) -> None:
    response = await openframe.get("/v1/alerts", params={"severity": "urgent"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "severity"


async def test_alert_filters_combine(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    response = await openframe.get(
        "/v1/alerts", params={"status": "open", "severity": "high", "per_page": 100}
    )
    expected = [
        a["id"] for a in sim.state.openframe.alerts if a["status"] == "open" and a["severity"] == "high"
    ]
    assert expected
    assert [a["id"] for a in response.json()["data"]] == expected
    assert response.json()["meta"]["total"] == len(expected)


async def test_alert_create_get_patch(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    created = await openframe.post(
        "/v1/alerts",
        json={"title": "Disk failing", "severity": "critical", "device_id": "dev_003", "id": "x"},
    )
    assert created.status_code == 201
    alert = created.json()
    assert alert["id"].startswith("alt_") and alert["id"] != "x"
    assert alert["status"] == "open"
    assert alert["created_at"].endswith("Z")
    assert sim.state.openframe.alerts.get(alert["id"]) == alert

    fetched = await openframe.get(f"/v1/alerts/{alert['id']}")
    assert fetched.json() == alert

    patched = await openframe.patch(f"/v1/alerts/{alert['id']}", json={"status": "acknowledged"})
    assert patched.status_code == 200
    body = patched.json()
    assert body["status"] == "acknowledged"
    assert body["title"] == "Disk failing"
    assert body["updated_at"] > alert["updated_at"]
    assert body["created_at"] == alert["created_at"]


async def test_updated_at_strictly_grows_on_fast_changes(openframe: httpx.AsyncClient) -> None:
    stamps = []
    for status in ("acknowledged", "open", "resolved", "open"):
        response = await openframe.patch("/v1/alerts/alt_0002", json={"status": status})
        stamps.append(response.json()["updated_at"])
    assert stamps == sorted(set(stamps))


async def test_updated_after_filter(openframe: httpx.AsyncClient) -> None:
    latest = (await openframe.get("/v1/alerts", params={"page": 4})).json()["data"][-1]
    patched = (await openframe.patch("/v1/alerts/alt_0005", json={"status": "resolved"})).json()
    response = await openframe.get("/v1/alerts", params={"updated_after": latest["updated_at"]})
    ids = [a["id"] for a in response.json()["data"]]
    assert patched["id"] in ids
    assert latest["id"] not in ids

    bad = await openframe.get("/v1/alerts", params={"updated_after": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "updated_after"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"severity": "high"}, "title"),
        ({"title": "", "severity": "high"}, "title"),
        ({"title": "x"}, "severity"),
        ({"title": "x", "severity": "urgent"}, "severity"),
        ({"title": "x", "severity": "low", "status": "closed"}, "status"),
        ({"title": 5, "severity": "low"}, "title"),
        ({"title": "x", "severity": "low", "metadata": []}, "metadata"),
    ],
)
async def test_alert_validation_is_422_naming_the_field(
    openframe: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    response = await openframe.post("/v1/alerts", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert [e["field"] for e in body["errors"]] == [field]


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
async def test_malformed_body_is_400(openframe: httpx.AsyncClient, content: bytes) -> None:
    response = await openframe.post(
        "/v1/alerts", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


async def test_patch_validation_and_unknown_id(openframe: httpx.AsyncClient) -> None:
    invalid = await openframe.patch("/v1/alerts/alt_0001", json={"severity": "urgent"})
    assert invalid.status_code == 422
    removing_required = await openframe.patch("/v1/alerts/alt_0001", json={"title": None})
    assert removing_required.status_code == 422
    missing = await openframe.patch("/v1/alerts/alt_9999", json={"status": "resolved"})
    assert missing.status_code == 404


async def test_unknown_route_and_method(openframe: httpx.AsyncClient) -> None:
    assert (await openframe.get("/v1/nothing")).json()["error"] == "not_found"
    response = await openframe.delete("/v1/alerts/alt_0001")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


async def test_security_events_list_and_filters(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    everything = (await openframe.get("/v1/security-events")).json()
    assert everything["meta"]["total"] == len(sim.state.openframe.security_events) == 6
    first = everything["data"][0]
    assert set(first) == {"id", "device_id", "severity", "category", "description", "detected_at", "details"}
    by_device = await openframe.get("/v1/security-events", params={"device_id": first["device_id"]})
    assert all(e["device_id"] == first["device_id"] for e in by_device.json()["data"])
    after = await openframe.get("/v1/security-events", params={"detected_after": first["detected_at"]})
    assert first["id"] not in [e["id"] for e in after.json()["data"]]


async def test_seed_data_is_deterministic() -> None:
    epoch = datetime(2026, 11, 1, tzinfo=UTC)
    a = Simulator(SimulatorConfig(seed=7, seed_epoch=epoch))
    b = Simulator(SimulatorConfig(seed=7, seed_epoch=epoch))
    assert a.state.openframe.alerts.all() == b.state.openframe.alerts.all()
    assert a.state.openframe.devices.all() == b.state.openframe.devices.all()
    assert a.state.octospine.tasks.all() == b.state.octospine.tasks.all()
    c = Simulator(SimulatorConfig(seed=8, seed_epoch=epoch))
    assert c.state.openframe.alerts.all() != a.state.openframe.alerts.all()
    statuses = {x["status"] for x in a.state.openframe.alerts}
    severities = {x["severity"] for x in a.state.openframe.alerts}
    assert statuses == {"open", "acknowledged", "resolved"}
    assert severities == {"low", "medium", "high", "critical"}
    assert len(a.state.openframe.devices) == 25 and len(a.state.openframe.alerts) == 40
