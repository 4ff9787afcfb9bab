"""The retry budget: retries add at most ~20% to the offered load, also in a 503 storm."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from openframe.v1 import alerts_pb2, alerts_pb2_grpc

from adapter.resilience import RetryBudget
from simulator import Fault

from ..manual_clock import ManualClock
from .harness import StartSim, running_adapter

GET_ALERT = "/v1/alerts/{alert_id}"


def test_budget_allows_a_share_of_calls_in_the_window() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, window_seconds=10, clock=clock)
    assert not budget.try_spend()  # nothing offered yet
    for _ in range(4):
        budget.record_call()
    assert not budget.try_spend()
    budget.record_call()  # 5 calls: 20% is one retry
    assert budget.try_spend()
    assert not budget.try_spend()
    for _ in range(10):
        budget.record_call()
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]
    clock.now += 10.5  # the calls age out of the window, and so do the retries
    assert budget.available() == 0
    assert not budget.try_spend()


def test_reserve_lets_a_quiet_upstream_retry() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0.5, window_seconds=4, clock=clock)
    budget.record_call()
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]  # 0.5/s * 4 s + 0.2


@pytest.mark.usefixtures("profile")
async def test_503_storm_sequential_calls_add_exactly_20_percent(start_sim: StartSim) -> None:
    sim = await start_sim()
    sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=503))
    resilience = {
        "retry": {"max_attempts": 3},
        "retry_budget": {"ratio": 0.2, "min_retries_per_second": 0},
    }
    async with running_adapter(sim, resilience=resilience) as h:
        stub = alerts_pb2_grpc.AlertServiceStub(h.channel)
        for _ in range(50):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetAlert(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        stopped = h.metric("meshadapter.upstream.retry.stopped")
    # Without a budget: 150 attempts. With it: 50 calls + 20% = 60, exactly.
    assert sim.count(route=GET_ALERT) == 60
    assert sum(v for a, v in stopped if a["reason"] == "retry_budget_exhausted") > 0


@pytest.mark.usefixtures("profile")
async def test_503_storm_concurrent_calls_stay_within_budget(start_sim: StartSim) -> None:
    sim = await start_sim()
    sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=503))
    resilience = {
        "retry": {"max_attempts": 5},
        "retry_budget": {"ratio": 0.2, "min_retries_per_second": 1.0, "window_seconds": 10},
    }
    async with running_adapter(sim, resilience=resilience) as h:
        stub = alerts_pb2_grpc.AlertServiceStub(h.channel)
        results = await asyncio.gather(
            *(stub.GetAlert(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5) for _ in range(100)),
            return_exceptions=True,
        )
        retries = sum(v for _, v in h.metric("meshadapter.upstream.retries"))
    print(f"503 storm, 100 concurrent calls: {sim.count(route=GET_ALERT)} attempts, {retries} retries")
    assert all(isinstance(r, grpc.aio.AioRpcError) for r in results)
    # 100 calls, 20% of them, plus the floor of 1 retry/s over the 10 s window.
    assert sim.count(route=GET_ALERT) == 100 + retries
    assert retries <= 100 * 0.2 + 10
