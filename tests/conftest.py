"""Shared fixtures: the simulator over real sockets, the adapter on a real
grpc.aio server bound to 127.0.0.1:0, and channels to it."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapter.config.settings import Settings
from adapter.runtime import MeshAdapter
from simulator import Simulator, SimulatorConfig

from .fuzz.counting import write_summary as write_fuzz_summary
from .unraisable_causes import name_unraisable_causes


def _own_broker_per_worker() -> None:
    """Points a pytest-xdist worker at its own broker, ``KAFKA_TEST_PORT + 10 * n`` for
    worker ``gwn`` (scripts/run-tests.sh starts one per worker). Outage tests stop and
    restart their broker; with one broker for all they would fail another worker's
    tests. Runs at import, before ``tests.events.kafka_fixtures`` reads the port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    port = int(os.environ.get("KAFKA_TEST_PORT", "19092")) + 10 * int(worker.removeprefix("gw"))
    os.environ["KAFKA_TEST_PORT"] = os.environ["KAFKA_PORT"] = str(port)


_own_broker_per_worker()


def _helper_threads_left_alone() -> None:
    """An adapter started inside a test (``MeshAdapter``) would set SCHED_BATCH on every
    other thread of pytest's process: the simulator's, xdist's, other tests'. The
    adapters the suite runs as processes (``tests.adapter_process``, which passes no
    ``MESH_`` variable of the test's) keep the default; tests/test_helper_threads.py
    checks it there."""
    os.environ.setdefault("MESH_HELPER_THREADS", "normal")


_helper_threads_left_alone()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    write_fuzz_summary(terminalreporter)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    name_unraisable_causes(report, call)
    return report


OPENFRAME_KEY = "test-openframe-key"
OCTOSPINE_KEY = "test-octospine-key"


def adapter_settings(
    sim: Simulator,
    *,
    transport: str = "aiohttp",
    upstream_extra: dict[str, Any] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings pointing the adapter at ``sim`` with the auth style of its profile;
    ``upstream_extra`` is merged into both upstreams' settings."""
    upstreams: dict[str, Any] = {}
    for vendor, url, key in (
        ("openframe", sim.openframe_url, OPENFRAME_KEY),
        ("octospine", sim.octospine_url, OCTOSPINE_KEY),
    ):
        wire = sim.config.settings(vendor)
        auth = {"header": "X-API-Key", "scheme": ""} if wire.auth_style == "x-api-key" else {}
        upstreams[vendor] = {"base_url": url, "auth": {"api_key": key, **auth}, "transport": transport}
        if wire.pagination != "page":
            upstreams[vendor]["pagination"] = {"style": wire.pagination}
        upstreams[vendor].update(upstream_extra or {})
    values: dict[str, Any] = {
        "grpc": {"host": "127.0.0.1", "port": 0},
        "upstreams": upstreams,
        # Tests that want the event pipeline (and Kafka) say so; the operator port binds :0.
        "events": {"enabled": False},
        "telemetry": {"ops_port": 0},
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs the CLI configures logging for a process; the next test
    must not inherit a handler bound to this test's (then closed) captured stderr."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(params=["documented", "drifted"])
def profile(request: pytest.FixtureRequest) -> str:
    """Runs a test once per simulator profile (the issue asks for both)."""
    return str(request.param)


@pytest_asyncio.fixture
async def simulator(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    profile = request.getfixturevalue("profile") if "profile" in request.fixturenames else "documented"
    sim = Simulator(
        SimulatorConfig(
            profile=profile,
            openframe_api_key=OPENFRAME_KEY,
            octospine_api_key=OCTOSPINE_KEY,
            openframe_port=0,
            octospine_port=0,
        )
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    return provider


@pytest_asyncio.fixture
async def adapter(
    request: pytest.FixtureRequest, simulator: Simulator, tracer_provider: TracerProvider
) -> AsyncIterator[MeshAdapter]:
    # A test module may parametrize the HTTP transport with a `transport` fixture.
    transport = request.getfixturevalue("transport") if "transport" in request.fixturenames else "aiohttp"
    # ...and adjust both upstreams' settings with an `upstream_extra` fixture.
    extra = request.getfixturevalue("upstream_extra") if "upstream_extra" in request.fixturenames else None
    settings = adapter_settings(simulator, transport=transport, upstream_extra=extra)
    adapter = MeshAdapter(settings, tracer_provider=tracer_provider)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop(0)


@pytest_asyncio.fixture
async def channel(adapter: MeshAdapter) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> Callable[[Any], Any]:
    """``stub(devices_pb2_grpc.DeviceServiceStub)`` -> a stub on the adapter."""
    return lambda cls: cls(channel)
