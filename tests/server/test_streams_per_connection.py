"""``security.limits.max_streams_per_connection`` over a real adapter and channel: a
connection holds at most that many calls (the rest wait on the client's side), and
it survives every kind of error the adapter answers. With grpcio 1.75.1 a call ended
by ``context.abort`` could stay counted against the limit, so a connection carrying
errors ended up refusing every call (tests/server/test_grpc_stream_limit.py); the
adapter ends its errors without abort (adapter/status/call_ending.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc

from adapter.runtime import MeshAdapter
from simulator import Fault, Simulator
from tests.conftest import adapter_settings
from tests.security.jwt_helpers import Issuer
from tests.security.test_wiring import secured

LIMIT = 3
#: More errors of each kind than the connection has streams.
ROUNDS = LIMIT * 3
ADAPTER = Path(__file__).resolve().parents[2] / "adapter"

Call = Callable[[grpc.aio.Channel, str], Awaitable[Any]]


def _auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def _device_not_found(channel: grpc.aio.Channel, token: str) -> Any:
    stub = devices_pb2_grpc.DeviceServiceStub(channel)
    return await stub.GetDevice(
        devices_pb2.GetDeviceRequest(device_id="dev_nope"), metadata=_auth(token), timeout=5
    )


async def _upstream_unavailable(channel: grpc.aio.Channel, token: str) -> Any:
    stub = alerts_pb2_grpc.AlertServiceStub(channel)
    return await stub.GetAlert(
        alerts_pb2.GetAlertRequest(alert_id="alt_0001"), metadata=_auth(token), timeout=5
    )


async def _invalid_argument(channel: grpc.aio.Channel, token: str) -> Any:
    stub = devices_pb2_grpc.DeviceServiceStub(channel)
    return await stub.GetDevice(devices_pb2.GetDeviceRequest(device_id=""), metadata=_auth(token), timeout=5)


async def _undecodable(channel: grpc.aio.Channel, token: str) -> Any:
    call = channel.unary_unary("/openframe.v1.DeviceService/GetDevice", None, None)
    return await call(b"\x0a\x05ab", metadata=_auth(token), timeout=5)


async def _no_credentials(channel: grpc.aio.Channel, token: str) -> Any:
    stub = devices_pb2_grpc.DeviceServiceStub(channel)
    return await stub.GetDevice(devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=5)


async def _permission_denied(channel: grpc.aio.Channel, token: str) -> Any:
    alert = alerts_pb2.Alert(title="t", severity=alerts_pb2.SEVERITY_LOW, device_id="dev_001")
    stub = alerts_pb2_grpc.AlertServiceStub(channel)
    return await stub.CreateAlert(
        alerts_pb2.CreateAlertRequest(alert=alert), metadata=_auth(token), timeout=5
    )


async def _health_not_found(channel: grpc.aio.Channel, token: str) -> Any:
    stub = health_pb2_grpc.HealthStub(channel)
    return await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)


async def _unknown_method(channel: grpc.aio.Channel, token: str) -> Any:
    return await channel.unary_unary("/openframe.v1.DeviceService/Nope", None, None)(b"", timeout=5)


async def _deadline(channel: grpc.aio.Channel, token: str) -> Any:
    stub = devices_pb2_grpc.DeviceServiceStub(channel)
    return await stub.ListDevices(devices_pb2.ListDevicesRequest(), metadata=_auth(token), timeout=0.05)


ERRORS: dict[str, tuple[Call, grpc.StatusCode]] = {
    "upstream 404": (_device_not_found, grpc.StatusCode.NOT_FOUND),
    "upstream 503, retried": (_upstream_unavailable, grpc.StatusCode.UNAVAILABLE),
    "invalid argument": (_invalid_argument, grpc.StatusCode.INVALID_ARGUMENT),
    "undecodable request": (_undecodable, grpc.StatusCode.INVALID_ARGUMENT),
    "no credentials": (_no_credentials, grpc.StatusCode.UNAUTHENTICATED),
    "permission denied": (_permission_denied, grpc.StatusCode.PERMISSION_DENIED),
    "health of an unknown service": (_health_not_found, grpc.StatusCode.NOT_FOUND),
    "unknown method": (_unknown_method, grpc.StatusCode.UNIMPLEMENTED),
    "deadline exceeded": (_deadline, grpc.StatusCode.DEADLINE_EXCEEDED),
}
#: Kinds whose failures open the route's circuit (after about 5 in a row, depending on
#: how many reached the upstream in time): later calls end UNAVAILABLE, saying so.
OPENS_THE_CIRCUIT = {"deadline exceeded"}


@pytest.mark.parametrize("kind", list(ERRORS))
async def test_a_connection_survives_more_errors_than_it_has_streams(
    kind: str, simulator: Simulator, tmp_path: Path
) -> None:
    simulator.faults.add(Fault(vendor="openframe", route="/v1/alerts/{alert_id}", status=503))
    simulator.faults.add(Fault(vendor="openframe", route="/v1/devices", latency=1.0))
    issuer = Issuer()
    settings = secured(
        simulator,
        tmp_path,
        issuer,
        limits={"max_streams_per_connection": LIMIT},
    )
    token = issuer.token("reader-1")
    call, code = ERRORS[kind]
    async with (
        MeshAdapter(settings) as adapter,
        grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as channel,
    ):
        ended = []
        for _ in range(ROUNDS):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await call(channel, token)
            ended.append((failed.value.code(), failed.value.details() or ""))
        served = await devices_pb2_grpc.DeviceServiceStub(channel).GetDevice(
            devices_pb2.GetDeviceRequest(device_id="dev_001"), metadata=_auth(token), timeout=5
        )
    assert ended[0][0] == code, ended
    for got, details in ended:  # a refused stream would be UNAVAILABLE "Received RST_STREAM..."
        circuit_open = kind in OPENS_THE_CIRCUIT and got == grpc.StatusCode.UNAVAILABLE
        assert got == code or (circuit_open and "circuit open" in details), ended
    assert served.id == "dev_001"


async def test_a_connection_holds_at_most_its_streams_and_the_rest_wait(simulator: Simulator) -> None:
    settings = adapter_settings(simulator, security={"limits": {"max_streams_per_connection": LIMIT}})
    async with (
        MeshAdapter(settings) as adapter,
        grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        open_now = [health.Watch(health_pb2.HealthCheckRequest()) for _ in range(LIMIT)]
        for call in open_now:
            await asyncio.wait_for(call.read(), 5)
        waiting = health.Watch(health_pb2.HealthCheckRequest())
        first = asyncio.ensure_future(waiting.read())
        done, _ = await asyncio.wait({first}, timeout=0.5)  # (cancelling a read ends the call)
        assert not done
        open_now[0].cancel()
        answer = await asyncio.wait_for(first, 5)  # it went as soon as a stream freed
        for call in (*open_now[1:], waiting):
            call.cancel()
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_the_adapter_ends_errors_without_abort() -> None:
    """A new ``context.abort`` would bring the quirk back: each error on a connection
    could cost it a stream for good. The one left stops a behaviour that is reading a
    stream of requests, which only abort can do (reflection's, on the caller's own
    connection)."""
    found = [
        str(path.relative_to(ADAPTER))
        for path in sorted(ADAPTER.rglob("*.py"))
        for line in path.read_text().splitlines()
        if re.search(r"context\.abort(_with_status)?\(", line)
    ]
    assert found == ["server/request_decoding.py"], found
