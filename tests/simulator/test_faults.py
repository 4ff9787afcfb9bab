"""Fault switches: each kind, matching, `times`, cancellation, WebSocket faults."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from simulator import Fault, Simulator
from tests.simulator.conftest import OF_KEY, OS_KEY


def _of(**kwargs: object) -> Fault:
    return Fault(vendor="openframe", method="GET", route="/v1/devices", **kwargs)  # type: ignore[arg-type]


async def test_status_with_retry_after_seconds(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    sim.faults.add(_of(status=503, retry_after=7, times=1))
    failed = await openframe.get("/v1/devices")
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "7"
    assert failed.json()["error"] == "service_unavailable"
    assert failed.json()["retry_after"] == 7
    assert failed.headers["X-Request-Id"]
    assert (await openframe.get("/v1/devices")).status_code == 200  # times=1: off again
    assert [r.fault for r in sim.find_requests(route="/v1/devices")] == ["status", None]


async def test_status_on_octospine_uses_nested_body(octospine: httpx.AsyncClient, sim: Simulator) -> None:
    sim.faults.add(Fault(vendor="octospine", route="/api/health", status=429, retry_after=3))
    response = await octospine.get("/api/health")
    assert response.status_code == 429
    assert response.json() == {
        "error": {"code": "RATE_LIMIT_EXCEEDED", "message": "Simulated Too Many Requests", "retryAfter": 3}
    }


async def test_status_with_http_date_and_custom_body(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    date = "Wed, 25 Nov 2026 13:00:00 GMT"
    sim.faults.add(_of(status=502, retry_after=date, body={"oops": True}, headers={"X-Upstream": "edge-3"}))
    response = await openframe.get("/v1/devices")
    assert (response.status_code, response.json()) == (502, {"oops": True})
    assert response.headers["Retry-After"] == date
    assert response.headers["X-Upstream"] == "edge-3"


async def test_latency_delays_the_answer(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    sim.faults.add(_of(latency=0.3, times=1))
    assert (await openframe.get("/v1/devices")).status_code == 200
    record = sim.find_requests(route="/v1/devices")[-1]
    assert record.ended is not None and record.ended - record.started >= 0.3
    assert record.fault == "latency"


async def test_latency_is_cancelled_when_the_client_leaves(
    openframe: httpx.AsyncClient, sim: Simulator
) -> None:
    sim.faults.add(_of(latency=30))
    with pytest.raises(httpx.ReadTimeout):
        await openframe.get("/v1/devices", timeout=0.2)
    await sim.wait_for(lambda: sim.requests[-1].done)
    record = sim.requests[-1]
    assert record.cancelled and record.status is None
    assert record.ended is not None and record.ended - record.started < 5


async def test_reset_mid_body(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    sim.faults.add(_of(reset=True, times=1))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await openframe.get("/v1/devices")
    assert (await openframe.get("/v1/devices")).status_code == 200


@pytest.mark.parametrize("kind", ["truncated_json", "malformed_json"])
async def test_broken_json(openframe: httpx.AsyncClient, sim: Simulator, kind: str) -> None:
    sim.faults.add(_of(**{kind: True}))
    response = await openframe.get("/v1/devices")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


async def test_wrong_content_type(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    sim.faults.add(_of(content_type="text/html", status=502))
    response = await openframe.get("/v1/devices")
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "text/html"
    assert b"<h1>502 Bad Gateway</h1>" in response.content


async def test_redirect_to_another_host(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    sim.faults.add(_of(redirect="127.0.0.2:9"))
    response = await openframe.get("/v1/devices", params={"page": 2})
    assert response.status_code == 302
    assert response.headers["Location"] == "http://127.0.0.2:9/v1/devices?page=2"


async def test_expired_token(octospine: httpx.AsyncClient, sim: Simulator) -> None:
    sim.faults.add(Fault(vendor="octospine", route="/api/tasks", expired_token=True, times=1))
    response = await octospine.get("/api/tasks")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "TOKEN_EXPIRED"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_matching_by_method_and_proto_style_route(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    sim.faults.add(Fault(vendor="openframe", method="PATCH", route="/v1/alerts/{alert.id}", status=500))
    assert (await openframe.get("/v1/alerts/alt_0001")).status_code == 200
    assert (await openframe.patch("/v1/alerts/alt_0001", json={})).status_code == 500
    sim.faults.clear()
    sim.faults.add(Fault(vendor="openframe", route="/v1/alerts/alt_0002", status=500))
    assert (await openframe.get("/v1/alerts/alt_0002")).status_code == 500
    assert (await openframe.get("/v1/alerts/alt_0003")).status_code == 200
    assert sim.count(vendor="openframe", method="PATCH", route="/v1/alerts/{alert_id}") == 1


async def test_faults_answer_before_authentication(sim: Simulator) -> None:
    sim.faults.add(Fault(vendor="openframe", status=503))
    async with httpx.AsyncClient(base_url=sim.openframe_url) as client:
        assert (await client.get("/v1/devices")).status_code == 503


def test_fault_needs_a_kind() -> None:
    with pytest.raises(ValueError, match="needs latency"):
        Fault(vendor="openframe")
    with pytest.raises(ValueError, match="vendor"):
        Fault(vendor="acme", status=500)  # type: ignore[arg-type]


async def test_websocket_upgrade_can_fail(sim: Simulator) -> None:
    sim.faults.add(Fault(vendor="octospine", route="/ws", status=503, times=1))
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(sim.octospine_ws_url, additional_headers={"Authorization": f"Bearer {OS_KEY}"}):
            pass
    assert refused.value.response.status_code == 503


async def test_ws_drop_closes_abruptly(sim: Simulator) -> None:
    headers = {"Authorization": f"Bearer {OF_KEY}"}
    async with connect(sim.openframe_ws_url, additional_headers=headers) as ws:
        await ws.recv()
        await sim.wait_for(lambda: len(sim.ws_sessions("openframe")) == 1)
        assert sim.ws_drop("openframe") == 1
        with pytest.raises(websockets.ConnectionClosedError):
            async with asyncio.timeout(5):
                await ws.recv()
        assert ws.close_code == 1006  # no close frame
    await sim.wait_for(lambda: not sim.ws_sessions("openframe"))
    ws_record = sim.find_requests(route="/v1/ws")[0]
    assert not ws_record.cancelled  # the server closed it; the client did not leave


async def test_ws_stall_withholds_events_and_pongs(sim: Simulator) -> None:
    headers = {"Authorization": f"Bearer {OF_KEY}"}
    async with connect(sim.openframe_ws_url, additional_headers=headers, ping_interval=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "topics": ["alerts"]}))
        await ws.recv()
        sim.ws_stall("openframe", 0.5)
        await sim.generate_events("openframe", "alert", 1)
        pong = await ws.ping()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.25):
                await ws.recv()
        assert not pong.done()
        async with asyncio.timeout(5):
            event = json.loads(await ws.recv())  # delivered once the stall ends
        assert event["type"] == "alert"
        second = await ws.ping()
        async with asyncio.timeout(5):
            await second
