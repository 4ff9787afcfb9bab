"""Fixtures shared by the security tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from simulator import Simulator
from tests.security.tenant_harness import tenant_sim_config


@pytest_asyncio.fixture(params=["documented", "drifted"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """The simulator with the tenants' credentials, as documented and with the drifted auth."""
    simulator = Simulator(tenant_sim_config(str(request.param)))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()
