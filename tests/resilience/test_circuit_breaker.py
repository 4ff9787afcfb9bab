"""The circuit breaker per route: opens after consecutive failures, fails fast,
half-opens with a probe, and closes again when the route recovers."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from openframe.v1 import alerts_pb2, alerts_pb2_grpc

from adapter.resilience import BreakerState, CircuitBreakerCaller
from simulator import Fault

from .harness import StartSim, error_details, running_adapter

pytestmark = pytest.mark.usefixtures("profile")

C = grpc.StatusCode
GET_ALERT = "/v1/alerts/{alert_id}"
ROUTE = "GET /v1/alerts/{alert_id}"
BREAKER = {
    "retry": {"max_attempts": 1},
    "circuit_breaker": {"enabled": True, "failure_threshold": 3, "open_seconds": 0.3},
}


async def _get(stub: alerts_pb2_grpc.AlertServiceStub) -> grpc.aio.AioRpcError | alerts_pb2.Alert:
    try:
        return await stub.GetAlert(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=2)
    except grpc.aio.AioRpcError as exc:
        return exc


async def test_opens_fails_fast_half_opens_and_recovers(start_sim: StartSim) -> None:
    sim = await start_sim()
    fault = sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=503))
    async with running_adapter(sim, resilience=BREAKER) as h:
        stub = alerts_pb2_grpc.AlertServiceStub(h.channel)
        breaker = h.layer("openframe", CircuitBreakerCaller)

        for _ in range(3):
            result = await _get(stub)
            assert isinstance(result, grpc.aio.AioRpcError) and result.code() == C.UNAVAILABLE
        assert breaker.state(ROUTE) is BreakerState.OPEN
        assert sim.count(route=GET_ALERT) == 3

        # Open: fails fast with RetryInfo; the upstream sees nothing.
        fast = await _get(stub)
        assert isinstance(fast, grpc.aio.AioRpcError) and fast.code() == C.UNAVAILABLE
        details = error_details(fast)
        assert details["ErrorInfo"].reason == "UPSTREAM_CIRCUIT_OPEN"
        assert 0 < details["RetryInfo"].retry_delay.ToTimedelta().total_seconds() <= 0.3
        assert sim.count(route=GET_ALERT) == 3
        # Other routes of the upstream are not affected.
        await stub.ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=2)
        assert [
            v for a, v in h.metric("meshadapter.upstream.circuit_breaker.state") if a["route"] == ROUTE
        ] == [2]

        # Half-open: one probe; it fails, so the breaker opens again.
        await sim.wait_for(lambda: breaker.state(ROUTE) is BreakerState.HALF_OPEN, timeout_s=2)
        assert isinstance(await _get(stub), grpc.aio.AioRpcError)
        assert sim.count(route=GET_ALERT) == 4
        assert breaker.state(ROUTE) is BreakerState.OPEN

        # The route recovers: the next probe succeeds and closes the breaker.
        sim.faults.remove(fault.id)
        await sim.wait_for(lambda: breaker.state(ROUTE) is BreakerState.HALF_OPEN, timeout_s=2)
        assert isinstance(await _get(stub), alerts_pb2.Alert)
        assert breaker.state(ROUTE) is BreakerState.CLOSED
        assert isinstance(await _get(stub), alerts_pb2.Alert)
        assert sim.count(route=GET_ALERT) == 6


async def test_half_open_lets_only_the_probes_through(start_sim: StartSim) -> None:
    sim = await start_sim()
    fault = sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=502))
    async with running_adapter(sim, resilience=BREAKER) as h:
        stub = alerts_pb2_grpc.AlertServiceStub(h.channel)
        breaker = h.layer("openframe", CircuitBreakerCaller)
        for _ in range(3):
            await _get(stub)
        sim.faults.remove(fault.id)
        sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, latency=0.2, times=1))  # a slow recovery
        await sim.wait_for(lambda: breaker.state(ROUTE) is BreakerState.HALF_OPEN, timeout_s=2)
        probe = asyncio.ensure_future(_get(stub))
        await sim.wait_for(lambda: sim.count(route=GET_ALERT) == 4)
        others = await asyncio.gather(*(_get(stub) for _ in range(5)))
        assert all(isinstance(o, grpc.aio.AioRpcError) and o.code() == C.UNAVAILABLE for o in others)
        assert isinstance(await probe, alerts_pb2.Alert)
    assert sim.count(route=GET_ALERT) == 4
    assert breaker.state(ROUTE) is BreakerState.CLOSED


async def test_client_errors_do_not_open_the_breaker(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim, resilience=BREAKER) as h:
        stub = alerts_pb2_grpc.AlertServiceStub(h.channel)
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetAlert(alerts_pb2.GetAlertRequest(alert_id="alt_nope"), timeout=2)
            assert info.value.code() == C.NOT_FOUND
        assert h.layer("openframe", CircuitBreakerCaller).state(ROUTE) is BreakerState.CLOSED
    assert sim.count(route=GET_ALERT) == 5


async def test_a_retry_that_repairs_the_call_is_not_a_failure(start_sim: StartSim) -> None:
    sim = await start_sim()
    resilience = {**BREAKER, "retry": {"max_attempts": 2}}
    async with running_adapter(sim, resilience=resilience) as h:
        stub = alerts_pb2_grpc.AlertServiceStub(h.channel)
        for _ in range(4):
            sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=503, times=1))
            assert isinstance(await _get(stub), alerts_pb2.Alert)
        assert h.layer("openframe", CircuitBreakerCaller).state(ROUTE) is BreakerState.CLOSED
    assert sim.count(route=GET_ALERT) == 8
