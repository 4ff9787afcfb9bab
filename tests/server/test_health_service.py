"""gRPC health over a real channel: every watcher hears every change (also after
another watcher left), Watch streams are capped while Check never is, and the cap on
connections (``security.limits``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from adapter.runtime import MeshAdapter
from simulator import Simulator
from tests.conftest import adapter_settings
from tests.events.kafka_fixtures import wait_until
from tests.resilience.harness import error_details

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DEVICES = "openframe.v1.DeviceService"


@contextlib.asynccontextmanager
async def running(
    sim: Simulator, meter_provider: MeterProvider | None = None, **limits: Any
) -> AsyncIterator[MeshAdapter]:
    adapter = MeshAdapter(adapter_settings(sim, security={"limits": limits}), meter_provider=meter_provider)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop(0)


def _channel(adapter: MeshAdapter) -> grpc.aio.Channel:
    # Its own connection: channels would otherwise share one subchannel.
    return grpc.aio.insecure_channel(
        f"127.0.0.1:{adapter.port}", options=[("grpc.use_local_subchannel_pool", 1)]
    )


def _watch(channel: grpc.aio.Channel, service: str = "") -> Any:
    return health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=service), timeout=30
    )


def _metric(reader: InMemoryMetricReader, name: str) -> float:
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points  # type: ignore[union-attr]
    ]
    return float(sum(points))


async def _next_status(call: Any, within: float = 5) -> int:
    return int((await asyncio.wait_for(call.read(), within)).status)


async def test_every_watcher_hears_a_change_after_another_watcher_left(simulator: Simulator) -> None:
    """grpcio-health-checking's servicer dropped what the other watchers of a service
    waited on when one of them left: they never heard the adapter drain."""
    async with running(simulator) as adapter, _channel(adapter) as channel:
        leaving, staying = _watch(channel), _watch(channel)
        leaving_svc, staying_svc = _watch(channel, DEVICES), _watch(channel, DEVICES)
        for call in (leaving, staying, leaving_svc, staying_svc):
            assert await _next_status(call) == SERVING
        leaving.cancel()
        leaving_svc.cancel()
        await asyncio.sleep(0.2)  # the servicer has seen them go
        adapter.board.set(DEVICES, False, "a test says so")
        assert await _next_status(staying_svc) == NOT_SERVING
        adapter.board.set(DEVICES, True)
        assert await _next_status(staying_svc) == SERVING
        stopping = asyncio.ensure_future(adapter.stop(grace=2, drain=0.5))
        assert await _next_status(staying) == NOT_SERVING
        assert await _next_status(staying_svc) == NOT_SERVING
        await stopping


async def test_watch_streams_past_the_cap_are_refused_and_check_still_answers(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="adapter.server.health_service")
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    async with running(simulator, meters, max_health_watchers=2) as adapter, _channel(adapter) as channel:
        held = [_watch(channel), _watch(channel, DEVICES)]
        for call in held:
            assert await _next_status(call) == SERVING
        refusals = []
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _watch(channel).read()
            refusals.append(refused.value)
        check = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        held[0].cancel()
        await wait_until(  # the servicer frees the place when it sees the cancel, not at cancel()
            lambda: _metric(reader, "meshadapter.health.watchers") == 1, within=5, what="a place freed"
        )
        again = _watch(channel)
        assert await _next_status(again) == SERVING  # a freed place is taken again
        open_now = _metric(reader, "meshadapter.health.watchers")
        again.cancel()
        held[1].cancel()
        await wait_until(
            lambda: _metric(reader, "meshadapter.health.watchers") == 0,
            within=5,
            what="the servicer saw them go",
        )
        open_after = _metric(reader, "meshadapter.health.watchers")
    assert check.status == SERVING
    assert (open_now, open_after) == (2, 0)
    assert _metric(reader, "meshadapter.health.watch_refusals") == 5
    first = refusals[0]
    assert first.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_health_watchers" in (first.details() or "")
    details = error_details(first)
    assert details["ErrorInfo"].reason == "TOO_MANY_HEALTH_WATCHERS"
    assert details["ErrorInfo"].metadata["limit"] == "2"
    assert details["RetryInfo"].retry_delay.seconds > 0
    # One line when the cap is reached and one when a place frees, not one per refusal.
    capped = [r for r in caplog.records if "Watch streams" in r.getMessage()]
    assert [r.levelno for r in capped] == [logging.WARNING, logging.INFO], [r.getMessage() for r in capped]


async def _check_on_a_new_connection(adapter: MeshAdapter, *, within: float) -> Any:
    """Check on a connection of its own, made again until one is served. The server
    frees a place when it reads a close, after close() returned here, so a connection
    made first is refused (one channel with wait_for_ready waited out its reconnect
    backoff past 5 s in CI; new connections are served within 2 tries here)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        async with _channel(adapter) as channel:
            try:
                return await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2, wait_for_ready=False
                )
            except grpc.aio.AioRpcError as refused:
                if loop.time() > deadline:
                    raise AssertionError(f"no connection served within {within}s") from refused
        await asyncio.sleep(0.05)


async def test_connections_past_the_cap_are_closed_as_they_arrive(simulator: Simulator) -> None:
    async with running(simulator, max_connections=2) as adapter:
        first, second, third = _channel(adapter), _channel(adapter), _channel(adapter)
        request = health_pb2.HealthCheckRequest()
        for channel in (first, second):
            await health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(third).Check(request, timeout=2, wait_for_ready=False)
        await first.close(None)
        await third.close(None)
        answer = await _check_on_a_new_connection(adapter, within=10)  # a place freed
        await second.close(None)
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert answer.status == SERVING
