"""An adapter wired for resilience tests: the simulator over real sockets, the
real caller stack from the factory (with an in-memory metric reader), a real
grpc.aio server on 127.0.0.1:0 and a channel to it. Shared by tests/auth."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import TracerProvider

from adapter.config.settings import Settings, UpstreamSettings
from adapter.resilience import find_layer
from adapter.runtime import MeshAdapter
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.credentials import CredentialProvider
from simulator import Simulator, SimulatorConfig
from tests.conftest import OCTOSPINE_KEY, OPENFRAME_KEY, adapter_settings

T = TypeVar("T")
StartSim = Callable[..., Awaitable[Simulator]]

#: Resilience settings that keep tests fast: short backoffs, no breaker or cache
#: unless a test turns them on.
FAST: dict[str, Any] = {
    "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.05},
    "circuit_breaker": {"enabled": False},
    "cache": {"enabled": False},
}


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def error_details(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The rich details of a failed call by type name (ErrorInfo, RetryInfo...)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    out: dict[str, Any] = {}
    for holder in status.details:
        name = holder.type_url.rsplit(".", 1)[-1]
        message = getattr(error_details_pb2, name)()
        holder.Unpack(message)
        out[name] = message
    return out


@dataclass
class Harness:
    sim: Simulator
    settings: Settings
    server: MeshAdapter
    channel: grpc.aio.Channel
    callers: dict[str, UpstreamCaller]
    credentials: dict[str, CredentialProvider]
    metrics: InMemoryMetricReader

    def layer(self, upstream: str, kind: type[T]) -> T:
        found = find_layer(self.callers[upstream], kind)  # type: ignore[type-var]
        assert found is not None, f"no {kind.__name__} in the {upstream} stack"
        return found  # type: ignore[no-any-return]

    def metric(self, name: str) -> list[tuple[dict[str, Any], float]]:
        """(attributes, value) of every point of metric ``name`` collected now."""
        data = self.metrics.get_metrics_data()
        points: list[tuple[dict[str, Any], float]] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        points.extend((dict(p.attributes or {}), p.value) for p in metric.data.data_points)  # type: ignore[union-attr]
        return points


def upstream_settings(
    sim: Simulator,
    *,
    resilience: dict[str, Any] | None = None,
    auth: dict[str, dict[str, Any]] | None = None,
    transport: str = "aiohttp",
    upstream_extra: dict[str, Any] | None = None,
) -> Settings:
    """``upstream_extra`` is merged into every upstream's settings (e.g. ``{"graphql": ...}``)."""
    base = adapter_settings(sim, transport=transport)
    upstreams = {}
    for name, upstream in base.upstreams.items():
        data = merged(upstream.model_dump(), upstream_extra or {})
        data["resilience"] = merged(FAST, resilience or {})
        if auth and name in auth:
            data["auth"] = auth[name]
        upstreams[name] = UpstreamSettings.model_validate(data)
    return base.model_copy(update={"upstreams": upstreams})


@contextlib.asynccontextmanager
async def running_adapter(
    sim: Simulator,
    *,
    resilience: dict[str, Any] | None = None,
    auth: dict[str, dict[str, Any]] | None = None,
    transport: str = "aiohttp",
    tracer_provider: TracerProvider | None = None,
    upstream_extra: dict[str, Any] | None = None,
) -> AsyncIterator[Harness]:
    settings = upstream_settings(
        sim, resilience=resilience, auth=auth, transport=transport, upstream_extra=upstream_extra
    )
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    adapter = MeshAdapter(settings, tracer_provider=tracer_provider, meter_provider=meters)
    await adapter.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as channel:
            yield Harness(sim, settings, adapter, channel, adapter.callers, adapter.credentials, reader)
    finally:
        await adapter.stop(0)
        meters.shutdown()


def sim_config(profile: str, **overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = {
        "profile": profile,
        "openframe_api_key": OPENFRAME_KEY,
        "octospine_api_key": OCTOSPINE_KEY,
        "openframe_port": 0,
        "octospine_port": 0,
        "shutdown_timeout_s": 0.5,
    }
    values.update(overrides)
    return SimulatorConfig(**values)


@pytest_asyncio.fixture
async def start_sim(profile: str) -> AsyncIterator[StartSim]:
    """Starts simulators of the test's profile with config overrides; stops them at the end."""
    started: list[Simulator] = []

    async def start(**overrides: Any) -> Simulator:
        sim = Simulator(sim_config(profile, **overrides))
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in reversed(started):
        await sim.stop()
