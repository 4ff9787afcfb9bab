"""The `/_sim/` admin API on each port (what `make run` and non-Python tests use)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from websockets.asyncio.client import connect

from simulator import Simulator
from tests.simulator.conftest import OF_KEY


@pytest_asyncio.fixture
async def admin(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.openframe_url) as client:
        yield client


async def test_faults_lifecycle(admin: httpx.AsyncClient, openframe: httpx.AsyncClient) -> None:
    added = await admin.post(
        "/_sim/faults", json={"method": "GET", "route": "/v1/devices", "status": 503, "times": 2}
    )
    assert added.status_code == 201
    fault = added.json()
    assert fault["vendor"] == "openframe" and fault["id"].startswith("flt_")
    assert (await openframe.get("/v1/devices")).status_code == 503
    listed = (await admin.get("/_sim/faults")).json()["faults"]
    assert [(f["id"], f["hits"]) for f in listed] == [(fault["id"], 1)]
    assert (await admin.delete(f"/_sim/faults/{fault['id']}")).status_code == 204
    assert (await openframe.get("/v1/devices")).status_code == 200

    await admin.post("/_sim/faults", json={"status": 500})
    assert (await admin.delete("/_sim/faults")).status_code == 204
    assert (await admin.get("/_sim/faults")).json()["faults"] == []


async def test_bad_fault_is_400(admin: httpx.AsyncClient) -> None:
    for body in ({"bogus": 1}, {}, {"status": 500, "times": -1}):
        response = await admin.post("/_sim/faults", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]
    assert (await admin.post("/_sim/faults", content=b"{x")).status_code == 400


async def test_request_counts(admin: httpx.AsyncClient, openframe: httpx.AsyncClient) -> None:
    await openframe.get("/v1/alerts/alt_0001")
    await openframe.get("/v1/alerts/alt_0002")
    await openframe.get("/v1/devices")
    counts = (await admin.get("/_sim/requests", params={"route": "/v1/alerts/{alert_id}"})).json()
    assert counts["count"] == 2
    assert [r["path"] for r in counts["requests"]] == ["/v1/alerts/alt_0001", "/v1/alerts/alt_0002"]
    assert (await admin.get("/_sim/requests", params={"method": "GET"})).json()["count"] == 3
    assert (await admin.delete("/_sim/requests")).status_code == 204
    assert (await admin.get("/_sim/requests")).json()["count"] == 0


async def test_generate_events_and_read_the_ring(admin: httpx.AsyncClient, sim: Simulator) -> None:
    made = await admin.post("/_sim/events", json={"kind": "alert", "count": 3, "rate_per_s": 1000})
    assert len(made.json()["generated"]) == 3
    events = (await admin.get("/_sim/events")).json()["events"]
    assert [e["data"]["id"] for e in events] == [a["id"] for a in made.json()["generated"]]
    since = (await admin.get("/_sim/events", params={"since": events[0]["id"]})).json()["events"]
    assert len(since) == 2
    assert (await admin.post("/_sim/events", json={"kind": "weather", "count": 1})).status_code == 400
    assert len(sim.state.openframe.alerts) == 43


async def test_reset_restores_the_seed(
    admin: httpx.AsyncClient, openframe: httpx.AsyncClient, sim: Simulator
) -> None:
    await openframe.post("/v1/alerts", json={"title": "x", "severity": "low"})
    await admin.post("/_sim/faults", json={"status": 500})
    assert (await admin.post("/_sim/reset")).status_code == 204
    assert len(sim.state.openframe.alerts) == 40
    assert len(sim.faults) == 0 and sim.count(vendor="openframe") == 0
    assert sim.events("openframe") == []


async def test_websocket_controls(admin: httpx.AsyncClient, sim: Simulator) -> None:
    async with connect(sim.openframe_ws_url, additional_headers={"Authorization": f"Bearer {OF_KEY}"}) as ws:
        await ws.recv()
        await sim.wait_for(lambda: sim.ws_sessions("openframe"))
        assert (await admin.post("/_sim/ws/stall", json={"seconds": 0.01})).json() == {"stalled": 1}
        assert (await admin.post("/_sim/ws/drop")).json() == {"dropped": 1}


async def test_octospine_only_endpoints(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.octospine_url) as admin:
        emitted = await admin.post("/_sim/webhooks/emit", json={"event": "alert.new", "data": {}})
        assert emitted.json() == {"deliveries": []}  # no subscribed target
        assert (await admin.get("/_sim/webhooks/deliveries")).json() == {"deliveries": []}
        report = await admin.post("/_sim/health/components", json={"name": "queue", "status": "degraded"})
        assert report.json()["status"] == "degraded"
        health = (await admin.get("/_sim/health")).json()
        assert (health["vendor"], health["auth_style"]) == ("octospine", "bearer")
        assert (await admin.post("/_sim/tokens/expire")).status_code == 204
        limits = (await admin.get("/_sim/rate-limits")).json()
        assert limits["limit"] == 1000
    async with httpx.AsyncClient(base_url=sim.openframe_url) as admin:
        assert (await admin.post("/_sim/webhooks/emit", json={"event": "x"})).status_code == 404


async def test_admin_calls_are_not_recorded(admin: httpx.AsyncClient, sim: Simulator) -> None:
    await admin.get("/_sim/faults")
    assert sim.requests == []
    body = json.dumps({"status": 500})
    await admin.post("/_sim/faults", content=body)
    assert (await admin.get("/_sim/health")).status_code == 200  # admin is never faulted
