"""Delays a vendor asks for (``Retry-After``, ``retryAfter`` in error bodies) are
clamped to ``resilience.max_server_delay_seconds``: one absurd value must neither
break the status mapping (it used to answer UNKNOWN: "Value out of range") nor
pause every later call for a day or forever."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from openframe.v1 import alerts_pb2, alerts_pb2_grpc

from adapter.resilience import UpstreamRateLimiter
from simulator import Fault

from .harness import StartSim, error_details, running_adapter

C = grpc.StatusCode
GET_ALERT = "/v1/alerts/{alert_id}"
REQUEST = alerts_pb2.GetAlertRequest(alert_id="alt_0001")


def _delay(error: grpc.aio.AioRpcError) -> float:
    return float(error_details(error)["RetryInfo"].retry_delay.ToTimedelta().total_seconds())


@pytest.mark.usefixtures("profile")
# A string goes into the Retry-After header as given; a number also into the body.
@pytest.mark.parametrize("retry_after", ["99999999999999999999", 86400])
async def test_absurd_retry_after_is_clamped_and_the_vendor_is_reachable_after_the_clamp(
    start_sim: StartSim, retry_after: int | str
) -> None:
    # The clamp leaves 1.2 s between the 429 and the end of the pause, past the paused call's
    # 0.3 s deadline, so a loaded machine that is slow to send that call still sees a refusal.
    clamp = 1.5
    sim = await start_sim()
    sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=429, retry_after=retry_after, times=1))
    resilience = {"max_server_delay_seconds": clamp, "retry": {"max_attempts": 1}}
    async with running_adapter(sim, resilience=resilience) as h:
        stub = alerts_pb2_grpc.AlertServiceStub(h.channel)
        with pytest.raises(grpc.aio.AioRpcError) as first:
            await stub.GetAlert(REQUEST, timeout=5)
        assert first.value.code() == C.RESOURCE_EXHAUSTED, first.value.details()
        assert error_details(first.value)["ErrorInfo"].reason == "UPSTREAM_RATE_LIMITED"
        assert 0 < _delay(first.value) <= clamp

        # The 429 paused the client-side quota, for the clamp and no longer.
        sent = sim.count(vendor="openframe", route=GET_ALERT)
        with pytest.raises(grpc.aio.AioRpcError) as paused:
            await stub.GetAlert(REQUEST, timeout=0.3)
        assert paused.value.code() == C.RESOURCE_EXHAUSTED, paused.value.details()
        assert error_details(paused.value)["ErrorInfo"].reason == "UPSTREAM_QUOTA_EXHAUSTED"
        assert 0 < _delay(paused.value) <= clamp
        assert sim.count(vendor="openframe", route=GET_ALERT) == sent

        await asyncio.sleep(_delay(paused.value))  # what a client told to wait does
        alert = await stub.GetAlert(REQUEST, timeout=5)
        assert alert.id == "alt_0001"
        assert sim.count(vendor="openframe", route=GET_ALERT) == sent + 1
        assert h.layer("openframe", UpstreamRateLimiter).remaining() > 0


@pytest.mark.usefixtures("profile")
async def test_default_clamp_is_five_minutes(start_sim: StartSim) -> None:
    sim = await start_sim()
    sim.faults.add(
        Fault(vendor="openframe", route=GET_ALERT, status=503, retry_after="99999999999999999999", times=1)
    )
    async with running_adapter(sim, resilience={"retry": {"max_attempts": 1}}) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await alerts_pb2_grpc.AlertServiceStub(h.channel).GetAlert(REQUEST, timeout=5)
    assert info.value.code() == C.UNAVAILABLE, info.value.details()
    assert _delay(info.value) == 300.0


async def test_429s_to_every_call_in_flight_log_one_pause_line_then_its_tail(
    start_sim: StartSim, caplog: pytest.LogCaptureFixture
) -> None:
    # Every call in flight when the vendor starts answering 429 gets one: a line each would
    # repeat the same pause as many times as there were calls.
    sim = await start_sim()
    sim.faults.add(
        Fault(vendor="openframe", route=GET_ALERT, status=429, retry_after=1, latency=1.0, times=8)
    )
    caplog.set_level(logging.WARNING, logger="adapter.resilience.rate_limiter")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "answered 429" in r.getMessage()]

    async with running_adapter(sim, resilience={"retry": {"max_attempts": 1}}) as h:
        stub = alerts_pb2_grpc.AlertServiceStub(h.channel)
        answers = await asyncio.gather(
            *(stub.GetAlert(REQUEST, timeout=5) for _ in range(8)), return_exceptions=True
        )
        during = lines()
    tail = lines()[len(during) :]  # the adapter's stop sends what was held back
    assert [a.code() for a in answers if isinstance(a, grpc.aio.AioRpcError)] == [C.RESOURCE_EXHAUSTED] * 8
    assert sim.count(vendor="openframe", route=GET_ALERT) == 8  # all in flight before the first 429
    assert during == ["openframe answered 429: pausing every rest call for 1.0s"]
    assert len(tail) == 1 and tail[0].startswith(during[0] + " (the last of 7 like it held back")
