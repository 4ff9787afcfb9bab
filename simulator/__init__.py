"""Stateful simulator of the OpenFrame and OCTOSPINE upstreams (REST, WebSocket, webhooks).

The adapter's default upstream for `make run` and the test double of the test suite::

    from simulator import Fault, Simulator, SimulatorConfig

    async with Simulator(SimulatorConfig(openframe_port=0, octospine_port=0)) as sim:
        sim.faults.add(Fault(vendor="openframe", route="/v1/devices", status=503, times=1))

Public names:

- `Simulator`, `SimulatorConfig`, `ProfileSettings`, `PROFILES`, `WebhookTarget`
- `Fault` (fault switches), `RequestRecord` (entries of `sim.requests`)
- `WebhookDelivery` (entries of `sim.webhook_deliveries`), `sign` (webhook signatures)
"""

from __future__ import annotations

from simulator.config import PROFILES, ProfileSettings, SimulatorConfig, Vendor, WebhookTarget
from simulator.faults import Fault
from simulator.octospine.webhooks import WebhookDelivery, sign
from simulator.recording import RequestRecord
from simulator.simulator import Simulator, SimulatorState

__all__ = [
    "PROFILES",
    "Fault",
    "ProfileSettings",
    "RequestRecord",
    "Simulator",
    "SimulatorConfig",
    "SimulatorState",
    "Vendor",
    "WebhookDelivery",
    "WebhookTarget",
    "sign",
]
