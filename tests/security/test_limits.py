"""Server-wide limits of ``security.limits``: keepalive enforcement (a client
pinging too often is sent away) and the cap on concurrent RPCs."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from openframe.v1 import devices_pb2, devices_pb2_grpc

from adapter.runtime import MeshAdapter
from simulator import Fault, Simulator
from tests.conftest import adapter_settings

PINGY = [
    ("grpc.keepalive_time_ms", 100),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


async def _stays_connected(port: int, seconds: float) -> bool:
    """Whether a channel that pings every 100 ms keeps its connection for ``seconds``."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=PINGY) as channel:
        await devices_pb2_grpc.DeviceServiceStub(channel).ListDevices(devices_pb2.ListDevicesRequest())
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        try:  # a GOAWAY takes the channel out of READY (it reconnects right after)
            await asyncio.wait_for(channel.wait_for_state_change(grpc.ChannelConnectivity.READY), seconds)
        except TimeoutError:
            return True
        return False


# Sent away after two ping strikes (a few seconds: gRPC core spaces the pings out); the
# wait ends at the GOAWAY, so the long bound only costs time when the test fails.
@pytest.mark.parametrize(("min_interval", "kept", "watch"), [(30.0, False, 20.0), (0.01, True, 4.0)])
async def test_a_client_pinging_too_often_is_sent_away(
    simulator: Simulator, min_interval: float, kept: bool, watch: float
) -> None:
    limits = {"min_client_ping_interval_seconds": min_interval}
    async with MeshAdapter(adapter_settings(simulator, security={"limits": limits})) as adapter:
        assert await _stays_connected(adapter.port, watch) is kept


async def test_the_concurrent_rpc_cap(simulator: Simulator) -> None:
    simulator.faults.add(Fault(vendor="openframe", route="/v1/devices", latency=1.0, times=1))
    limits = {"max_concurrent_rpcs": 1}
    async with (
        MeshAdapter(adapter_settings(simulator, security={"limits": limits})) as adapter,
        grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as channel,
    ):
        stub = devices_pb2_grpc.DeviceServiceStub(channel)
        slow = asyncio.ensure_future(stub.ListDevices(devices_pb2.ListDevicesRequest(), timeout=10))
        await simulator.wait_for(lambda: simulator.count(route="/v1/devices"))  # the first is in flight
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetDevice(devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await slow
