"""WebSocket streams: subscribe, events on state changes, replay, pings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect

from simulator import Simulator
from tests.simulator.conftest import OF_KEY, OS_KEY


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(5):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def recv_until(ws: ClientConnection, predicate: Any) -> dict[str, Any]:
    while not predicate(message := await recv(ws)):
        pass
    return message


@pytest_asyncio.fixture
async def of_ws(sim: Simulator) -> AsyncIterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {OF_KEY}"}
    async with connect(sim.openframe_ws_url, additional_headers=headers) as ws:
        hello = await recv(ws)
        assert hello["type"] == "connected" and hello["session_id"].startswith("ses_")
        yield ws


@pytest_asyncio.fixture
async def os_ws(sim: Simulator) -> AsyncIterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {OS_KEY}"}
    async with connect(sim.octospine_ws_url, additional_headers=headers) as ws:
        assert (await recv(ws))["type"] == "connected"
        yield ws


async def test_alert_created_by_rest_is_pushed(of_ws: ClientConnection, openframe: httpx.AsyncClient) -> None:
    await of_ws.send(json.dumps({"type": "subscribe", "topics": ["alerts"]}))
    assert await recv(of_ws) == {"type": "subscribed", "topics": ["alerts"]}
    created = (await openframe.post("/v1/alerts", json={"title": "T", "severity": "high"})).json()
    event = await recv(of_ws)
    assert (event["type"], event["action"], event["data"]) == ("alert", "created", created)
    assert event["id"].startswith("evt_") and event["timestamp"].endswith("Z")

    updated = (await openframe.patch(f"/v1/alerts/{created['id']}", json={"status": "resolved"})).json()
    event = await recv(of_ws)
    assert (event["action"], event["data"]) == ("updated", updated)


async def test_unsubscribed_topics_get_nothing(
    of_ws: ClientConnection, openframe: httpx.AsyncClient, sim: Simulator
) -> None:
    await of_ws.send(json.dumps({"type": "subscribe", "topics": ["devices"]}))
    await recv(of_ws)
    await openframe.post("/v1/alerts", json={"title": "T", "severity": "low"})
    # Events are queued in order, so a pong right after means no alert event was sent.
    await of_ws.send(json.dumps({"type": "ping"}))
    assert await recv(of_ws) == {"type": "pong"}
    await sim.generate_events("openframe", "device", 1)
    event = await recv(of_ws)
    assert (event["type"], event["action"]) == ("device", "updated")


async def test_unknown_topic_and_bad_messages(of_ws: ClientConnection) -> None:
    await of_ws.send(json.dumps({"type": "subscribe", "topics": ["alerts", "weather"]}))
    error = await recv(of_ws)
    assert (error["type"], error["code"], error["topics"]) == ("error", "unknown_topic", ["weather"])
    assert await recv(of_ws) == {"type": "subscribed", "topics": ["alerts"]}
    await of_ws.send("{nope")
    assert (await recv(of_ws))["code"] == "invalid_message"
    await of_ws.send(json.dumps({"type": "dance"}))
    assert (await recv(of_ws))["code"] == "unknown_command"
    await of_ws.send(json.dumps({"type": "unsubscribe", "topics": ["alerts"]}))
    assert await recv(of_ws) == {"type": "unsubscribed", "topics": ["alerts"]}


async def test_security_events_and_monotonic_ids(of_ws: ClientConnection, sim: Simulator) -> None:
    await of_ws.send(json.dumps({"type": "subscribe", "topics": ["security_events", "alerts"]}))
    await recv(of_ws)
    await sim.generate_events("openframe", "security_event", 2)
    await sim.generate_events("openframe", "alert", 2)
    events = [await recv(of_ws) for _ in range(4)]
    assert [e["type"] for e in events] == ["security_event"] * 2 + ["alert"] * 2
    assert events[0]["action"] == "detected"
    assert events[0]["data"] == sim.state.openframe.security_events.get(events[0]["data"]["id"])
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 4


async def test_subscribe_since_replays_the_ring(sim: Simulator) -> None:
    await sim.generate_events("openframe", "alert", 3)
    first_id = sim.events("openframe")[0]["id"]
    headers = {"Authorization": f"Bearer {OF_KEY}"}
    async with connect(sim.openframe_ws_url, additional_headers=headers) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "subscribe", "topics": ["alerts"], "since": first_id}))
        await recv(ws)
        replayed = [await recv(ws) for _ in range(2)]
    assert [e["id"] for e in replayed] == [e["id"] for e in sim.events("openframe")[1:]]


async def test_high_rate_generation_is_stored_listed_and_pushed(
    of_ws: ClientConnection, openframe: httpx.AsyncClient, sim: Simulator
) -> None:
    await of_ws.send(json.dumps({"type": "subscribe", "topics": ["alerts"]}))
    await recv(of_ws)
    made = await sim.generate_events("openframe", "alert", 200, rate_per_s=2000)
    pushed = [await recv(of_ws) for _ in range(200)]
    assert [e["data"]["id"] for e in pushed] == [a["id"] for a in made]
    listed = await openframe.get("/v1/alerts", params={"per_page": 100, "page": 3})
    assert listed.json()["meta"]["total"] == 240


async def test_octospine_task_progress_stream(os_ws: ClientConnection, octospine: httpx.AsyncClient) -> None:
    await os_ws.send(json.dumps({"action": "subscribe", "events": ["task.progress"]}))
    assert await recv(os_ws) == {"type": "subscribed", "events": ["task.progress"]}
    task = (await octospine.post("/api/tasks", json={"name": "S", "type": "x"})).json()
    done = await recv_until(os_ws, lambda m: m["data"]["status"] == "completed")
    assert done == {**done, "type": "task.progress"}
    assert done["data"] == {"task_id": task["id"], "status": "completed", "progress": 100}


async def test_octospine_alert_and_status_events(os_ws: ClientConnection, sim: Simulator) -> None:
    await os_ws.send(json.dumps({"action": "subscribe", "events": ["alert.new", "system.status"]}))
    await recv(os_ws)
    alert = (await sim.generate_events("octospine", "alert.new"))[0]
    event = await recv(os_ws)
    assert (event["type"], event["data"]) == ("alert.new", alert)
    assert set(alert) == {"id", "title", "severity", "source", "message", "created_at"}
    sim.octospine.health.set_component("database", "unhealthy", "down")
    status = await recv(os_ws)
    assert (status["type"], status["data"]["status"]) == ("system.status", "unhealthy")


async def test_pings(os_ws: ClientConnection) -> None:
    await os_ws.send(json.dumps({"action": "ping"}))
    assert await recv(os_ws) == {"type": "pong"}
    await os_ws.send(json.dumps({"type": "ping"}))
    assert await recv(os_ws) == {"type": "pong"}
    pong = await os_ws.ping()
    await asyncio.wait_for(pong, 5)  # protocol-level pong


async def test_stop_closes_sessions_cleanly(start_sim: Any) -> None:
    sim = await start_sim()
    async with connect(sim.openframe_ws_url, additional_headers={"Authorization": f"Bearer {OF_KEY}"}) as ws:
        await recv(ws)
        await sim.stop()
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1001


async def test_session_log_records_each_session_open_subscribe_and_close(sim: Simulator) -> None:
    headers = {"Authorization": f"Bearer {OF_KEY}"}
    async with connect(sim.openframe_ws_url, additional_headers=headers) as ws:
        session_id = (await recv(ws))["session_id"]
        await ws.send(json.dumps({"type": "subscribe", "topics": ["alerts"]}))
        await recv(ws)
        (live,) = sim.ws_session_log("openframe")
        assert live["id"] == session_id and live["topics"] == ["alerts"] and live["closed"] is None
        assert live["opened"] <= live["subscribed"]
    await sim.wait_for(lambda: sim.ws_session_log("openframe")[0]["closed"] is not None)
    (ended,) = sim.ws_session_log("openframe")
    assert ended["subscribed"] <= ended["closed"]
    async with httpx.AsyncClient(base_url=sim.openframe_url) as admin:
        answer = (await admin.get("/_sim/ws/sessions")).json()
    assert [s["id"] for s in answer["sessions"]] == [session_id]
    await sim.reset("openframe")
    assert sim.ws_session_log("openframe") == []
