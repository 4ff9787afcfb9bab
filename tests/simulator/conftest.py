"""Fixtures: a started simulator on ephemeral ports and HTTP clients for both vendors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest_asyncio

from simulator import Simulator, SimulatorConfig

OF_KEY = "of-key"
OS_KEY = "os-key"

StartSim = Callable[..., Awaitable[Simulator]]


def make_config(**overrides: Any) -> SimulatorConfig:
    """Test defaults: known keys, ephemeral ports, fast tasks and webhook retries."""
    settings: dict[str, Any] = {
        "openframe_api_key": OF_KEY,
        "octospine_api_key": OS_KEY,
        "openframe_port": 0,
        "octospine_port": 0,
        "task_duration_s": 0.3,
        "webhook_backoff_base_s": 0.02,
        "shutdown_timeout_s": 0.5,
    }
    settings.update(overrides)
    return SimulatorConfig(**settings)


@pytest_asyncio.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Starts simulators with config overrides; stops them all at the end."""
    started: list[Simulator] = []

    async def start(**overrides: Any) -> Simulator:
        sim = Simulator(make_config(**overrides))
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in reversed(started):
        await sim.stop()


@pytest_asyncio.fixture
async def sim(start_sim: StartSim) -> Simulator:
    """A simulator with the documented profile."""
    return await start_sim()


@pytest_asyncio.fixture
async def openframe(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """An OpenFrame client authenticated with `Authorization: Bearer`."""
    headers = {"Authorization": f"Bearer {OF_KEY}"}
    async with httpx.AsyncClient(base_url=sim.openframe_url, headers=headers) as client:
        yield client


@pytest_asyncio.fixture
async def octospine(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """An OCTOSPINE client authenticated with `Authorization: Bearer`."""
    headers = {"Authorization": f"Bearer {OS_KEY}"}
    async with httpx.AsyncClient(base_url=sim.octospine_url, headers=headers) as client:
        yield client
