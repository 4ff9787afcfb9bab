"""Server limits with a real server and channel: the cap on calls in flight,
keepalive enforcement (as configured and by default) and the maximum connection
age (``security.limits``), and the grpc options the settings become."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from openframe.v1 import devices_pb2, devices_pb2_grpc

from adapter.runtime import MeshAdapter
from adapter.server.grpc_options import limit_options
from simulator import Fault, Simulator
from tests.conftest import adapter_settings
from tests.resilience.harness import error_details

LIST_DEVICES = "/v1/devices"


@contextlib.asynccontextmanager
async def limited_channel(
    sim: Simulator, options: list[tuple[str, int]] | None = None, **limits: Any
) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to an adapter with these ``security.limits``."""
    settings = adapter_settings(sim, security={"limits": limits})
    async with (
        MeshAdapter(settings) as adapter,
        grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}", options=options) as channel,
    ):
        yield channel


def _list(channel: grpc.aio.Channel, timeout: float = 10) -> Any:
    return devices_pb2_grpc.DeviceServiceStub(channel).ListDevices(
        devices_pb2.ListDevicesRequest(page_size=1), timeout=timeout
    )


async def test_calls_past_the_server_cap_are_refused_and_health_still_answers(simulator: Simulator) -> None:
    simulator.faults.add(Fault(vendor="openframe", route=LIST_DEVICES, latency=1.0, times=2))
    async with limited_channel(simulator, max_concurrent_rpcs=2) as channel:
        slow = [asyncio.ensure_future(_list(channel)) for _ in range(2)]
        await simulator.wait_for(lambda: simulator.count(route=LIST_DEVICES) == 2)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _list(channel)
        sent_when_refused = simulator.count(route=LIST_DEVICES)
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        answers = await asyncio.gather(*slow)
        after = await _list(channel)  # the cap frees with the calls
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(refused.value)
    assert (
        details["ErrorInfo"].reason == "SERVER_AT_CAPACITY" and details["ErrorInfo"].metadata["limit"] == "2"
    )
    assert "RetryInfo" in details and "max_concurrent_rpcs" in (refused.value.details() or "")
    assert sent_when_refused == 2  # the refused call never reached the vendor
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert all(a.devices for a in answers) and after.devices


#: A client that pings as often as grpc lets it (about once a second), calls or not.
EAGER_PINGER = [
    ("grpc.keepalive_time_ms", 50),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


async def _left_ready(channel: grpc.aio.Channel, within: float) -> bool:
    """Whether the channel's connection leaves READY (the server sent GOAWAY) within ``within`` s."""
    state = channel.get_state()
    try:
        async with asyncio.timeout(within):
            while state is grpc.ChannelConnectivity.READY:
                await channel.wait_for_state_change(state)
                state = channel.get_state()
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize(
    ("min_interval", "permit_idle", "closed"),
    [
        (30.0, True, True),  # pings more often than allowed: strikes, GOAWAY too_many_pings
        (0.01, False, True),  # pings with no call open, which are not permitted
        (0.01, True, False),  # the same pings, allowed: the connection stays
    ],
)
async def test_a_client_pinging_too_often_is_disconnected(
    simulator: Simulator, min_interval: float, permit_idle: bool, closed: bool
) -> None:
    limits = {
        "min_client_ping_interval_seconds": min_interval,
        "permit_keepalive_without_calls": permit_idle,
        "max_ping_strikes": 1,
    }
    async with limited_channel(simulator, EAGER_PINGER, **limits) as channel:
        assert (await _list(channel)).devices
        assert channel.get_state() is grpc.ChannelConnectivity.READY
        # Two strikes take about two seconds (the client pings once a second at most);
        # the allowed case is watched for twice that long.
        assert await _left_ready(channel, within=10.0 if closed else 4.0) is closed
        assert (await _list(channel)).devices  # a GOAWAY is not an error: the client reconnects


async def test_connections_are_closed_at_their_maximum_age_after_a_grace(simulator: Simulator) -> None:
    simulator.faults.add(Fault(vendor="openframe", route=LIST_DEVICES, latency=1.0, times=1))
    limits = {"max_connection_age_seconds": 0.3, "max_connection_age_grace_seconds": 10}
    async with limited_channel(simulator, **limits) as channel:
        answer = await _list(channel)  # outlives the age: finished within the grace
        closed = await _left_ready(channel, within=10.0)  # the server sent GOAWAY
        again = await _list(channel)  # on a new connection
    assert answer.devices and again.devices and closed


#: The defaults (no ``security.limits`` given): a client pinging every 100 ms.
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


async def test_the_default_limits_send_a_client_pinging_too_often_away(simulator: Simulator) -> None:
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
        "max_streams_per_connection": 64,
    }
    options = dict(limit_options(adapter_settings(simulator, security={"limits": limits}).security.limits))
    assert options == {
        "grpc.http2.min_ping_interval_without_data_ms": 12500,
        "grpc.http2.max_ping_strikes": 2,
        "grpc.keepalive_permit_without_calls": 0,
        "grpc.keepalive_time_ms": 300000,
        "grpc.keepalive_timeout_ms": 20000,
        "grpc.http2.max_pings_without_data": 0,
        "grpc.server_handshake_timeout_ms": 120000,
        "grpc.max_concurrent_streams": 64,
        "grpc.max_allowed_incoming_connections": 4096,
        "grpc.max_connection_age_ms": 60000,
        "grpc.max_connection_age_grace_ms": 5000,
    }
    never = {"max_connection_age_seconds": 0, "max_streams_per_connection": 0, "max_connections": 0}
    options = dict(limit_options(adapter_settings(simulator, security={"limits": never}).security.limits))
    assert not {
        "grpc.max_connection_age_ms",
        "grpc.max_concurrent_streams",
        "grpc.max_allowed_incoming_connections",
    } & set(options)
