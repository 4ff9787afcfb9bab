"""Calls accepted ahead (adapter/server/accept_ahead.py): more pending accepts than
grpc.aio's one, on a real server over a real channel. The first test fails when
grpcio no longer has the private API the module uses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from openframe.v1 import devices_pb2

from adapter.config.settings import GrpcSettings
from adapter.lifecycle.health import HealthBoard
from adapter.server.accept_ahead import AcceptAhead, unsupported_reason
from adapter.server.app import AdapterServer, ServedService
from tests.events.kafka_fixtures import wait_until

SERVICE = "openframe.v1.DeviceService"
GET_DEVICE = f"/{SERVICE}/GetDevice"


class _Handler:
    """Echoes the device id once ``in_flight`` calls have all arrived (and, when
    ``hold``, once the test releases them)."""

    def __init__(self, in_flight: int, *, hold: bool = False) -> None:
        self.calls = 0
        self.all_in = asyncio.Event()
        self.released = asyncio.Event()
        self._in_flight = in_flight
        if not hold:
            self.released.set()

    async def __call__(self, request: Any, context: Any) -> Any:
        self.calls += 1
        if self.calls >= self._in_flight:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), 10)
        await asyncio.wait_for(self.released.wait(), 10)
        return devices_pb2.Device(id=request.device_id)


class _Deny(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A per-call gate that refuses every call and counts them."""

    def __init__(self) -> None:
        self.seen = 0

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        self.seen += 1

        async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "denied by the test's gate")

        return grpc.unary_unary_rpc_method_handler(refuse, request_deserializer=lambda b: b)


def _server(handler: Any, *, accept_ahead: int = 8, **kwargs: Any) -> AdapterServer:
    served = grpc.unary_unary_rpc_method_handler(
        handler.__call__,  # a coroutine function, as grpc.aio checks it
        request_deserializer=devices_pb2.GetDeviceRequest.FromString,
        response_serializer=devices_pb2.Device.SerializeToString,
    )
    return AdapterServer(
        GrpcSettings(host="127.0.0.1", port=0, accept_ahead=accept_ahead, drain_seconds=0),
        services=[ServedService(SERVICE, {"GetDevice": served})],
        board=HealthBoard(),
        **kwargs,
    )


async def _get_devices(port: int, count: int) -> list[Any]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            GET_DEVICE,
            request_serializer=devices_pb2.GetDeviceRequest.SerializeToString,
            response_deserializer=devices_pb2.Device.FromString,
        )
        return await asyncio.gather(
            *(call(devices_pb2.GetDeviceRequest(device_id=f"dev_{i}"), timeout=15) for i in range(count)),
            return_exceptions=True,
        )


def test_this_grpcio_has_what_accepting_ahead_uses() -> None:
    # Fails when a grpcio upgrade changes grpc.aio's private server API: re-read
    # AioServer._server_main_loop of the new version and mend accept_ahead.py.
    assert unsupported_reason() is None


async def test_many_calls_in_flight_are_all_answered_and_the_extra_loops_accept_some() -> None:
    handler = _Handler(in_flight=40)
    server = _server(handler)
    await server.start()
    try:
        assert server.accept_ahead is not None and server.accept_ahead.loops == 7
        answers = await _get_devices(server.port, 40)
        assert [a.id for a in answers] == [f"dev_{i}" for i in range(40)]
        assert handler.calls == 40
        assert server.accept_ahead.accepted > 0  # not all through grpc.aio's own loop
    finally:
        await server.stop(0)


async def test_calls_accepted_ahead_go_through_the_per_call_interceptors() -> None:
    handler = _Handler(in_flight=1)
    gate = _Deny()
    server = _server(handler, interceptors=[gate])
    await server.start()
    try:
        answers = await _get_devices(server.port, 50)
        assert all(isinstance(a, grpc.aio.AioRpcError) for a in answers)
        assert {a.code() for a in answers} == {grpc.StatusCode.PERMISSION_DENIED}
        assert gate.seen == 50 and handler.calls == 0
        assert server.accept_ahead is not None and server.accept_ahead.accepted > 0
    finally:
        await server.stop(0)


async def test_stop_ends_every_accept_loop_after_the_calls_in_flight(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = _Handler(in_flight=12, hold=True)
    server = _server(handler)
    await server.start()
    accept_ahead = server.accept_ahead
    assert accept_ahead is not None
    calls = asyncio.ensure_future(_get_devices(server.port, 12))
    await asyncio.wait_for(handler.all_in.wait(), 10)  # twelve calls in flight, held
    with caplog.at_level(logging.WARNING, logger="adapter.server.accept_ahead"):
        stopping = asyncio.ensure_future(server.stop(5))
        # the stop has begun: grpc core ends every pending accept at once ...
        await wait_until(lambda: accept_ahead.loops == 0, within=5, what="the accept loops to end")
        assert not stopping.done()  # ... while the stop waits for the calls in flight
        handler.released.set()
        answers = await asyncio.wait_for(calls, 15)
        await asyncio.wait_for(stopping, 15)
    assert [a.id for a in answers] == [f"dev_{i}" for i in range(12)]
    assert accept_ahead.loops == 0
    assert not caplog.records  # core ended every pending accept: none cancelled, none failed
    refused = await _get_devices(server.port, 1)
    assert isinstance(refused[0], grpc.aio.AioRpcError)
    assert refused[0].code() == grpc.StatusCode.UNAVAILABLE


async def test_one_pending_accept_is_grpc_aio_alone() -> None:
    handler = _Handler(in_flight=16)
    server = _server(handler, accept_ahead=1)
    await server.start()
    try:
        assert server.accept_ahead is not None and server.accept_ahead.loops == 0
        answers = await _get_devices(server.port, 16)
        assert [a.id for a in answers] == [f"dev_{i}" for i in range(16)]
        assert server.accept_ahead.accepted == 0
    finally:
        await server.stop(0)


async def test_grpc_s_own_call_limit_keeps_grpc_aio_s_one_accept_loop() -> None:
    # maximum_concurrent_rpcs is counted in grpc.aio's loop alone: no loops beside it.
    handler = _Handler(in_flight=1)
    server = _server(handler, maximum_concurrent_rpcs=4)
    await server.start()
    try:
        assert server.accept_ahead is None
        answers = await _get_devices(server.port, 2)
        assert [a.id for a in answers] == ["dev_0", "dev_1"]
    finally:
        await server.stop(0)


async def test_calls_one_after_another_do_not_use_up_a_connections_streams() -> None:
    # A call's stream counts against grpc.max_concurrent_streams until its state is
    # freed: a loop that kept its last call while waiting for the next held one each.
    limit = 3
    handler = _Handler(in_flight=1)
    server = _server(handler, accept_ahead=32, extra_options=[("grpc.max_concurrent_streams", limit)])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            get = channel.unary_unary(
                GET_DEVICE,
                request_serializer=devices_pb2.GetDeviceRequest.SerializeToString,
                response_deserializer=devices_pb2.Device.FromString,
            )
            unknown = channel.unary_unary(f"/{SERVICE}/Nope")
            for i in range(limit * 4):
                answer = await get(devices_pb2.GetDeviceRequest(device_id=f"dev_{i}"), timeout=5)
                assert answer.id == f"dev_{i}"
                with pytest.raises(grpc.aio.AioRpcError) as ended:
                    await unknown(b"", timeout=5)
                assert ended.value.code() == grpc.StatusCode.UNIMPLEMENTED  # not UNAVAILABLE: refused
        assert server.accept_ahead is not None and server.accept_ahead.accepted >= limit
    finally:
        await server.stop(0)


async def test_a_server_without_grpcs_private_core_keeps_its_own_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What a grpcio that renamed aio.Server's private core attribute would look like.
    class _NoCore:
        pass

    ahead = AcceptAhead(_NoCore(), handlers=(), interceptors=(), extra=7)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="adapter.server.accept_ahead"):
        ahead.start()
    assert ahead.loops == 0
    assert "serving with grpc.aio's one pending accept" in caplog.text
    assert "no cygrpc.AioServer in _server" in caplog.text
    await ahead.stop()  # nothing started: nothing to wait for
