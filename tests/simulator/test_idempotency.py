"""`Idempotency-Key` on POST: repeats answer the first answer and create nothing."""

from __future__ import annotations

import asyncio

import httpx

from simulator import Fault, Simulator

ALERT = {"title": "Once", "severity": "high"}


async def test_repeat_returns_first_answer(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    before = len(sim.state.openframe.alerts)
    first = await openframe.post("/v1/alerts", json=ALERT, headers={"Idempotency-Key": "k-1"})
    second = await openframe.post("/v1/alerts", json=ALERT, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(sim.state.openframe.alerts) == before + 1
    assert len([e for e in sim.events("openframe") if e["type"] == "alert"]) == 1


async def test_without_key_or_with_new_key_creates_again(
    openframe: httpx.AsyncClient, sim: Simulator
) -> None:
    before = len(sim.state.openframe.alerts)
    await openframe.post("/v1/alerts", json=ALERT)
    await openframe.post("/v1/alerts", json=ALERT)
    await openframe.post("/v1/alerts", json=ALERT, headers={"Idempotency-Key": "a"})
    await openframe.post("/v1/alerts", json=ALERT, headers={"Idempotency-Key": "b"})
    assert len(sim.state.openframe.alerts) == before + 4


async def test_same_key_different_body_is_409(openframe: httpx.AsyncClient) -> None:
    await openframe.post("/v1/alerts", json=ALERT, headers={"Idempotency-Key": "k-2"})
    other = await openframe.post(
        "/v1/alerts", json={**ALERT, "title": "Other"}, headers={"Idempotency-Key": "k-2"}
    )
    assert other.status_code == 409
    assert other.json()["error"] == "conflict"


async def test_validation_errors_are_replayed_too(octospine: httpx.AsyncClient) -> None:
    first = await octospine.post("/api/tasks", json={"name": "x"}, headers={"Idempotency-Key": "v"})
    second = await octospine.post("/api/tasks", json={"name": "x"}, headers={"Idempotency-Key": "v"})
    assert first.status_code == second.status_code == 422
    assert first.json() == second.json()


async def test_concurrent_repeats_create_once(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    before = len(sim.state.openframe.alerts)
    sim.faults.add(Fault(vendor="openframe", method="POST", route="/v1/alerts", latency=0.2, times=1))
    answers = await asyncio.gather(
        *(openframe.post("/v1/alerts", json=ALERT, headers={"Idempotency-Key": "k-3"}) for _ in range(5))
    )
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(sim.state.openframe.alerts) == before + 1


async def test_retry_after_reset_mid_body_gets_the_created_resource(
    openframe: httpx.AsyncClient, sim: Simulator
) -> None:
    """The first answer was lost on the wire after the create: the retry replays it."""
    before = len(sim.state.openframe.alerts)
    sim.faults.add(Fault(vendor="openframe", method="POST", route="/v1/alerts", reset=True, times=1))
    try:
        await openframe.post("/v1/alerts", json=ALERT, headers={"Idempotency-Key": "k-4"})
        raise AssertionError("the connection should have been reset")
    except httpx.TransportError:
        pass
    retry = await openframe.post("/v1/alerts", json=ALERT, headers={"Idempotency-Key": "k-4"})
    assert retry.status_code == 201
    assert len(sim.state.openframe.alerts) == before + 1
    assert retry.json() == sim.state.openframe.alerts.all()[-1]


async def test_unanswered_5xx_is_not_remembered(openframe: httpx.AsyncClient, sim: Simulator) -> None:
    sim.faults.add(Fault(vendor="openframe", method="POST", route="/v1/alerts", status=503, times=1))
    first = await openframe.post("/v1/alerts", json=ALERT, headers={"Idempotency-Key": "k-5"})
    second = await openframe.post("/v1/alerts", json=ALERT, headers={"Idempotency-Key": "k-5"})
    assert (first.status_code, second.status_code) == (503, 201)
