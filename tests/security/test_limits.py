"""Server-wide limits of ``security.limits``: keepalive enforcement (a client
pinging too often is sent away), connection age, the cap on concurrent RPCs."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from openframe.v1 import devices_pb2, devices_pb2_grpc

from adapter.runtime import MeshAdapter
from adapter.server.grpc_options import limit_options
from simulator import Fault, Simulator
from tests.conftest import adapter_settings

PINGY = [
    ("grpc.keepalive_time_ms", 100),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


async def _stays_connected(port: int, options: list[tuple[str, int]], seconds: float) -> bool:
    """Whether a channel keeps its connection for ``seconds`` after a call."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        await devices_pb2_grpc.DeviceServiceStub(channel).ListDevices(devices_pb2.ListDevicesRequest())
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        try:  # a GOAWAY takes the channel out of READY (it would reconnect right after)
            await asyncio.wait_for(channel.wait_for_state_change(grpc.ChannelConnectivity.READY), seconds)
        except TimeoutError:
            return True
        return False


async def test_a_client_pinging_too_often_is_sent_away(simulator: Simulator) -> None:
    async with MeshAdapter(adapter_settings(simulator)) as adapter:
        # Pings every 100 ms: GOAWAY too_many_pings after two strikes (a few seconds,
        # as gRPC core spaces the pings out; the wait ends at the GOAWAY).
        assert not await _stays_connected(adapter.port, PINGY, 20.0)
        assert await _stays_connected(adapter.port, [], 2.0)  # a quiet client stays


def test_limit_options_carry_the_settings(simulator: Simulator) -> None:
    limits = {
        "min_client_ping_interval_seconds": 12.5,
        "max_connection_age_seconds": 60,
        "max_connection_age_grace_seconds": 5,
    }
    options = dict(limit_options(adapter_settings(simulator, security={"limits": limits}).security.limits))
    assert options == {
        "grpc.http2.min_ping_interval_without_data_ms": 12500,
        "grpc.http2.max_ping_strikes": 2,
        "grpc.keepalive_permit_without_calls": 0,
        "grpc.keepalive_time_ms": 300000,
        "grpc.keepalive_timeout_ms": 20000,
        "grpc.http2.max_pings_without_data": 0,
        "grpc.max_connection_age_ms": 60000,
        "grpc.max_connection_age_grace_ms": 5000,
    }
    never = {"max_connection_age_seconds": 0}
    options = dict(limit_options(adapter_settings(simulator, security={"limits": never}).security.limits))
    assert "grpc.max_connection_age_ms" not in options


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
