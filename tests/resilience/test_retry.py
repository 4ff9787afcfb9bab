"""Retries seen from the simulator: exact attempt counts, Retry-After honoured,
never past the deadline, only for idempotent calls and transient failures."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import time

import grpc
import pytest
from openframe.v1 import alerts_pb2, alerts_pb2_grpc

from simulator import Fault

from .harness import StartSim, error_details, running_adapter

pytestmark = pytest.mark.usefixtures("profile")

C = grpc.StatusCode
GET_ALERT = "/v1/alerts/{alert_id}"


def _get(h) -> object:  # type: ignore[no-untyped-def]
    return alerts_pb2_grpc.AlertServiceStub(h.channel).GetAlert


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"status": 502},
        {"status": 504},
        {"status": 429},
        {"reset": True},
    ],
    ids=lambda f: next(iter(f)) + str(next(iter(f.values()))),
)
@pytest.mark.parametrize("failures", [1, 2])
async def test_recovers_after_n_failures_in_1_plus_n_attempts(start_sim: StartSim, fault, failures) -> None:  # type: ignore[no-untyped-def]
    sim = await start_sim()
    sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, times=failures, **fault))
    async with running_adapter(sim, resilience={"retry": {"max_attempts": 3}}) as h:
        alert = await _get(h)(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5)  # type: ignore[operator]
    assert alert.id == "alt_0001"
    assert sim.count(route=GET_ALERT) == 1 + failures


async def test_stops_at_exactly_max_attempts(start_sim: StartSim) -> None:
    sim = await start_sim()
    sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=503))
    async with running_adapter(sim, resilience={"retry": {"max_attempts": 4}}) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get(h)(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5)  # type: ignore[operator]
        retried = h.metric("meshadapter.upstream.retries")
    assert info.value.code() == C.UNAVAILABLE
    assert sim.count(route=GET_ALERT) == 4
    meta = error_details(info.value)["ErrorInfo"].metadata
    assert (meta["attempts"], meta["retry_stopped"]) == ("4", "max_attempts")
    assert sum(v for a, v in retried if a["cause"] == "http_503") == 3


@pytest.mark.parametrize(
    ("status", "code"), [(500, C.INTERNAL), (400, C.INVALID_ARGUMENT), (404, C.NOT_FOUND)]
)
async def test_non_retryable_status_is_one_attempt(
    start_sim: StartSim, status: int, code: grpc.StatusCode
) -> None:
    sim = await start_sim()
    sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=status))
    async with running_adapter(sim) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get(h)(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5)  # type: ignore[operator]
    assert info.value.code() == code
    assert sim.count(route=GET_ALERT) == 1


async def test_post_without_idempotency_key_is_one_attempt(start_sim: StartSim) -> None:
    sim = await start_sim()
    sim.faults.add(Fault(vendor="openframe", method="POST", route="/v1/alerts", status=503))
    async with running_adapter(sim) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await alerts_pb2_grpc.AlertServiceStub(h.channel).CreateAlert(
                alerts_pb2.CreateAlertRequest(
                    alert=alerts_pb2.Alert(title="t", severity=alerts_pb2.SEVERITY_LOW)
                ),
                timeout=5,
            )
    assert info.value.code() == C.UNAVAILABLE
    assert sim.count(method="POST", route="/v1/alerts") == 1


async def test_post_with_idempotency_key_is_retried_and_creates_once(start_sim: StartSim) -> None:
    sim = await start_sim()
    before = len(sim.state.openframe.alerts)
    # The first attempt is processed, then the connection is reset mid-answer.
    sim.faults.add(Fault(vendor="openframe", method="POST", route="/v1/alerts", reset=True, times=1))
    async with running_adapter(sim) as h:
        created = await alerts_pb2_grpc.AlertServiceStub(h.channel).CreateAlert(
            alerts_pb2.CreateAlertRequest(
                alert=alerts_pb2.Alert(title="once", severity=alerts_pb2.SEVERITY_LOW), request_id="req-42"
            ),
            timeout=5,
        )
    attempts = sim.find_requests(method="POST", route="/v1/alerts")
    assert len(attempts) == 2
    assert [r.headers.get("Idempotency-Key") for r in attempts] == ["req-42", "req-42"]
    assert len(sim.state.openframe.alerts) == before + 1
    assert sim.state.openframe.alerts.get(created.id)["title"] == "once"


def _http_date(seconds_from_now: float) -> str:
    return email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now), usegmt=True
    )


@pytest.mark.parametrize(("form", "status"), [("seconds", 429), ("http-date", 503)])
async def test_retry_after_is_honoured(start_sim: StartSim, form: str, status: int) -> None:
    sim = await start_sim()
    retry_after: int | str = 1 if form == "seconds" else _http_date(1.5)
    sim.faults.add(
        Fault(vendor="openframe", route=GET_ALERT, status=status, retry_after=retry_after, times=1)
    )
    async with running_adapter(sim) as h:
        await _get(h)(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5)  # type: ignore[operator]
    first, second = sim.find_requests(route=GET_ALERT)
    assert first.ended is not None
    if form == "seconds":
        # Counted from when the answer left the simulator, which is before the adapter read it.
        assert second.started - first.ended >= 1.0
    else:
        # An HTTP-date names a wall-clock instant: the retry may not start before it.
        expires = email.utils.parsedate_to_datetime(str(retry_after)).timestamp()
        started_wall = time.time() - (time.monotonic() - second.started)
        assert started_wall >= expires - 0.005


@pytest.mark.parametrize(("status", "code"), [(429, C.RESOURCE_EXHAUSTED), (503, C.UNAVAILABLE)])
async def test_retry_after_beyond_the_deadline_fails_at_once(
    start_sim: StartSim, status: int, code: grpc.StatusCode
) -> None:
    sim = await start_sim()
    sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=status, retry_after=30))
    async with running_adapter(sim) as h:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get(h)(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=2)  # type: ignore[operator]
        elapsed = time.monotonic() - started
    assert info.value.code() == code
    assert elapsed < 1.0
    assert sim.count(route=GET_ALERT) == 1
    details = error_details(info.value)
    assert details["RetryInfo"].retry_delay.seconds == 30
    assert details["ErrorInfo"].metadata["retry_stopped"] == "retry_after_exceeds_deadline"
    if status == 429:
        assert details["QuotaFailure"].violations


async def test_no_attempt_starts_after_the_deadline(start_sim: StartSim) -> None:
    sim = await start_sim()
    sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=503, latency=0.25))
    resilience = {"retry": {"max_attempts": 10, "initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.1}}
    async with running_adapter(sim, resilience=resilience) as h:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get(h)(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=0.8)  # type: ignore[operator]
        elapsed = time.monotonic() - started
        await sim.wait_for(lambda: all(r.done for r in sim.find_requests(route=GET_ALERT)))
    assert info.value.code() in (C.DEADLINE_EXCEEDED, C.UNAVAILABLE)
    assert elapsed < 1.5
    attempts = sim.find_requests(route=GET_ALERT)
    assert 2 <= len(attempts) < 10
    assert all(r.started < started + 0.8 for r in attempts)


async def test_an_outage_logs_one_stopped_retry_line_then_its_tail(
    start_sim: StartSim, caplog: pytest.LogCaptureFixture
) -> None:
    # In an outage every call stops retrying alike: a line each would be the log's whole content.
    sim = await start_sim()
    sim.faults.add(Fault(vendor="openframe", route=GET_ALERT, status=503))
    caplog.set_level(logging.INFO, logger="adapter.resilience.retry")
    resilience = {
        "retry_budget": {"ratio": 0, "min_retries_per_second": 0},  # every call stops at once, alike
        "circuit_breaker": {"enabled": False},
    }

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "not retrying" in r.getMessage()]

    async with running_adapter(sim, resilience=resilience) as h:
        for _ in range(12):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await _get(h)(alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5)  # type: ignore[operator]
            assert info.value.code() == C.UNAVAILABLE
        during = lines()
        stopped = h.metric("meshadapter.upstream.retry.stopped")
    tail = lines()[len(during) :]  # the adapter's stop sends what was held back
    assert during == [
        "openframe GET /v1/alerts/{alert_id}: not retrying after attempt 1 (http_503): retry_budget_exhausted"
    ]
    assert sum(v for a, v in stopped if a["reason"] == "retry_budget_exhausted") == 12
    assert len(tail) == 1 and tail[0].startswith(
        during[0] + " (the last of 11 like it held back in the last "
    )
