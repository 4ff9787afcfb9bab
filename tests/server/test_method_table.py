"""The interceptors that decide per method wrap each handler once, at start-up;
everything that decides per call stays a server interceptor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from openframe.v1 import devices_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from adapter.assembly.server_parts import server_interceptors
from adapter.config.settings import GrpcSettings
from adapter.lifecycle.health import HealthBoard
from adapter.security.audit import AuditLog
from adapter.security.authorizer import CallAuthorizer
from adapter.server.app import AdapterServer, ServedService
from adapter.server.call_cap import ConcurrentCallCap
from adapter.server.method_table import MethodTable, PerCallInterceptor
from adapter.server.reflection import enable_reflection

SELF_TRACED = "openframe.v1.DeviceService"
GET_DEVICE = f"/{SELF_TRACED}/GetDevice"


async def _echo(request: Any, context: Any) -> Any:
    return request


HANDLER = grpc.unary_unary_rpc_method_handler(
    _echo,
    request_deserializer=devices_pb2.GetDeviceRequest.FromString,
    response_serializer=devices_pb2.Device.SerializeToString,
)


def _assembled() -> Any:
    return server_interceptors(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider([InMemoryMetricReader()]),
        self_traced=[SELF_TRACED],
        authorizer=CallAuthorizer(permissions={}, policy=None, jwt=None, audit=AuditLog()),
        max_concurrent_rpcs=8,
    )


def _table() -> MethodTable:
    """The services a server registers: one upstream-backed, health and reflection."""
    table = MethodTable()
    table.add_registered_method_handlers(SELF_TRACED, {"GetDevice": HANDLER})
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), table)
    enable_reflection([SELF_TRACED, health.SERVICE_NAME], table)
    return table


def test_what_decides_per_call_runs_per_call_and_nothing_else_does() -> None:
    interceptors = _assembled()
    assert [type(i) for i in interceptors.per_call] == [CallAuthorizer, ConcurrentCallCap]
    assert not any(isinstance(i, (CallAuthorizer, ConcurrentCallCap)) for i in interceptors.per_method)
    assert len(interceptors.per_method) == 3  # tracing, rpc.server.duration, request decoding


async def test_each_method_interceptor_reads_only_the_method() -> None:
    """What makes wrapping once safe: resolving hands the interceptors call details
    whose metadata cannot be read, and every method of every kind of service resolves
    (an interceptor added there that decided per call would fail this)."""
    table = _table()
    methods = await table.resolve(_assembled().per_method)
    assert set(methods.methods) == {
        GET_DEVICE,
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    }
    # The decoding wrapper went on: its tolerant deserializer answers bytes that do not
    # parse with what the handler refuses, where the bare one raises.
    wrapped = methods.get(GET_DEVICE)
    assert wrapped is not HANDLER
    assert type(wrapped.request_deserializer(b"\xff")).__name__ == "UndecodableRequest"
    with pytest.raises(Exception, match="parsing"):
        HANDLER.request_deserializer(b"\xff")
    # A method-level lookup is a dictionary's: unknown methods are None, as grpc wants.
    assert methods.service(_Details("/x.Y/Z")) is None
    assert methods.service(_Details(GET_DEVICE)) is wrapped


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata: tuple[tuple[str, str], ...] = ()


class _ReadsMetadata(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        if dict(details.invocation_metadata).get("x-tenant") == "a":
            return None
        return await continuation(details)


async def test_an_interceptor_reading_a_calls_metadata_is_refused_at_start_up() -> None:
    with pytest.raises(PerCallInterceptor, match=f"metadata of a call to {GET_DEVICE}"):
        await _table().resolve([_ReadsMetadata()])


async def test_a_service_registered_without_its_methods_is_refused_at_start_up() -> None:
    table = MethodTable()
    table.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SELF_TRACED, {"GetDevice": HANDLER}),)
    )
    with pytest.raises(TypeError, match=f"registered without their methods: {SELF_TRACED}"):
        await table.resolve([])

    class Anonymous(grpc.GenericRpcHandler):  # type: ignore[type-arg]
        def service(self, handler_call_details: Any) -> Any:
            return None

    with pytest.raises(TypeError, match="does not name its service"):
        MethodTable().add_generic_rpc_handlers((Anonymous(),))


def test_a_method_registered_twice_is_refused() -> None:
    table = MethodTable()
    table.add_registered_method_handlers(SELF_TRACED, {"GetDevice": HANDLER})
    with pytest.raises(ValueError, match=f"{GET_DEVICE} is registered twice"):
        table.add_registered_method_handlers(SELF_TRACED, {"GetDevice": HANDLER})


async def test_a_server_answers_through_the_table_with_no_interceptor() -> None:
    """A real server and channel: the health service registered on the table is served
    by the one generic handler, and a method that is not served is UNIMPLEMENTED."""
    table = MethodTable()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, table)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((await table.resolve(_assembled().per_method),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            bad = channel.unary_unary("/grpc.health.v1.Health/Check")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await bad(b"\xff\xff", timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            missing = channel.unary_unary(GET_DEVICE)
            with pytest.raises(grpc.aio.AioRpcError) as unserved:
                await missing(b"", timeout=5)
            assert unserved.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)


def _adapter_server(method_interceptors: Any) -> AdapterServer:
    return AdapterServer(
        GrpcSettings(host="127.0.0.1", port=0),
        services=[ServedService(SELF_TRACED, {"GetDevice": HANDLER})],
        board=HealthBoard(),
        method_interceptors=method_interceptors,
    )


async def test_the_adapter_server_serves_its_methods_as_the_method_interceptors_made_them() -> None:
    server = _adapter_server(_assembled().per_method)
    await server.start()
    try:
        assert GET_DEVICE in server.methods and server.methods.get(GET_DEVICE) is not HANDLER
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = channel.unary_unary(
                GET_DEVICE,
                request_serializer=devices_pb2.GetDeviceRequest.SerializeToString,
                response_deserializer=devices_pb2.GetDeviceRequest.FromString,
            )
            echoed = await call(devices_pb2.GetDeviceRequest(device_id="dev_1"), timeout=5)
            assert echoed.device_id == "dev_1"
            raw = channel.unary_unary(GET_DEVICE)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await raw(b"\xff\xff", timeout=5)  # decoding's wrapper, applied at start-up
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop(0)


async def test_the_adapter_server_does_not_start_with_a_method_interceptor_that_decides_per_call() -> None:
    server = _adapter_server([_ReadsMetadata()])
    with pytest.raises(PerCallInterceptor):
        await server.start()
    assert server.port == 0  # never bound
    await server.stop(0)  # nothing to stop: idempotent
