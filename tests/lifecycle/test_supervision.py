"""Background tasks killed under a running MeshAdapter (events on, real Kafka): the
health the orchestrator reads turns NOT_SERVING within a second, then the task is
restarted (policy ``restart``) or the adapter exits non-zero (policy ``exit``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapter.resilience import backoff
from adapter.runtime import MeshAdapter
from simulator import Simulator

from ..events.kafka_fixtures import BOOTSTRAP, consume_all
from ..events.mesh_fixtures import health_of, mesh_settings

pytestmark = pytest.mark.kafka

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@contextlib.asynccontextmanager
async def _health_checks(port: int) -> AsyncIterator[Callable[[str], Awaitable[int]]]:
    """Health checks over one channel, connected before a test kills a task: what is
    timed is the adapter's reaction, not a new connection per poll on a busy machine."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        stub = health_pb2_grpc.HealthStub(channel)

        async def check(service: str) -> int:
            answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            return int(answer.status)

        yield check


async def _health_becomes(
    check: Callable[[str], Awaitable[int]], service: str, status: int, *, within: float
) -> float:
    """Seconds until gRPC health of ``service`` reads ``status`` (fails after ``within``)."""
    started = time.monotonic()
    while (answer := await check(service)) != status:
        if time.monotonic() - started > within:
            pytest.fail(f"{service} still {answer}, not {status}, after {within}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def restarts_at_the_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backoff waits its full step instead of a uniform draw in ``[0, step]``.

    A killed task is restarted after a full-jitter delay that may be ~0 s (a 10%
    chance under 50 ms); its restarted part reads SERVING at once (a reconnecting
    stream is not failing), so a poller could miss a NOT_SERVING that did happen
    (CI: "restarting task ws-openframe in 0.0s", then still SERVING). At the ceiling
    the first restart waits 0.5 s: NOT_SERVING lasts long enough to be read."""

    def ceiling(attempt: int, *, initial: float, maximum: float, multiplier: float, rng: object) -> float:
        return min(maximum, initial * multiplier ** max(attempt - 1, 0))

    monkeypatch.setattr(backoff, "full_jitter", ceiling)


@pytest_asyncio.fixture
async def running(
    simulator: Simulator, tmp_path: Path, prefix: str, restarts_at_the_ceiling: None
) -> AsyncIterator[MeshAdapter]:
    adapter = MeshAdapter(mesh_settings(simulator, tmp_path, prefix))
    await adapter.start()
    assert adapter.events is not None
    for source in adapter.events.sources.values():
        await asyncio.wait_for(source.streaming.wait(), 10)
    try:
        yield adapter
    finally:
        await adapter.stop(0)


async def test_a_killed_stream_task_turns_not_serving_then_comes_back(
    running: MeshAdapter, simulator: Simulator, prefix: str
) -> None:
    assert running.events is not None
    stream = running.events.sources["openframe"]
    service = "meshadapter.events.openframe"
    assert await health_of(running.port, service) == SERVING
    assert stream._task is not None
    async with _health_checks(running.port) as check:
        stream._task.cancel()  # killed from outside, not stopped by its part
        took = await _health_becomes(check, service, NOT_SERVING, within=1.0)
        print(f"\nstream task killed -> NOT_SERVING in {took * 1000:.0f} ms")
        await _health_becomes(check, service, SERVING, within=10)
    await asyncio.wait_for(stream.streaming.wait(), 10)
    assert running.supervisor.deaths("ws-openframe") == 1
    # and the restarted stream still carries events to Kafka
    created = await simulator.generate_events("openframe", "alert", count=1)
    records = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=1, within=20)
    assert len(records) == len(created) == 1


async def test_a_killed_drainer_turns_not_serving_then_delivers_again(
    running: MeshAdapter, simulator: Simulator, prefix: str
) -> None:
    assert running.events is not None
    drainer = running.events.drainer
    service = "meshadapter.v1.EventService"
    assert await health_of(running.port, service) == SERVING
    assert drainer._task is not None
    async with _health_checks(running.port) as check:
        drainer._task.cancel()
        took = await _health_becomes(check, service, NOT_SERVING, within=1.0)
        print(f"\ndrainer task killed -> NOT_SERVING in {took * 1000:.0f} ms")
        await _health_becomes(check, service, SERVING, within=10)
    assert running.supervisor.deaths("spool-drainer") == 1
    await simulator.generate_events("openframe", "alert", count=2)
    records = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=2, within=20)
    assert len(records) == 2


async def test_policy_exit_ends_the_adapter_with_the_cause(
    simulator: Simulator, tmp_path: Path, prefix: str
) -> None:
    settings = mesh_settings(simulator, tmp_path, prefix).model_copy(update={"on_task_death": "exit"})
    adapter = MeshAdapter(settings)
    await adapter.start()
    try:
        assert adapter.events is not None and adapter.events.drainer._task is not None
        adapter.events.drainer._task.cancel()
        await asyncio.wait_for(adapter.wait_for_termination(), 2)
        assert "spool-drainer" in adapter.fatal
    finally:
        await adapter.stop(0)
