"""Fixtures of the end-to-end event tests: a whole MeshAdapter (events on) against
the simulator and the real test broker, with topics under a per-test prefix."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider

from adapter.runtime import MeshAdapter
from simulator import Simulator

from .kafka_fixtures import BOOTSTRAP, delete_topics_with_prefix
from .mesh_fixtures import mesh_settings


@pytest_asyncio.fixture
async def prefix() -> AsyncIterator[str]:
    """A topic prefix of the test's own; its topics are deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:8]}."
    yield name
    await delete_topics_with_prefix(BOOTSTRAP, name)


@pytest_asyncio.fixture
async def mesh(
    simulator: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> AsyncIterator[MeshAdapter]:
    adapter = MeshAdapter(mesh_settings(simulator, tmp_path, prefix), tracer_provider=tracer_provider)
    await adapter.start()
    assert adapter.events is not None
    for source in adapter.events.sources.values():
        await asyncio.wait_for(source.streaming.wait(), 10)
    try:
        yield adapter
    finally:
        await adapter.stop(0)
