"""A failure whose status cannot be built still leaves as INTERNAL, never UNKNOWN.

grpc.aio answers an exception that escapes a handler with UNKNOWN and the exception's
text ("Unexpected <class 'ValueError'>: ..."). Building the status of a failure is code
too: when it raised (a GraphQL ``retryAfter`` past a Duration's range did, before the
graphql.answer fuzz target found it), the caller got exactly that. Served over a real
channel here, with a handler whose status building raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status
from openframe.v1 import devices_pb2

from adapter.descriptors.loader import load_service_specs
from adapter.server.handlers import HandlerContext, MethodHandler
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse

SPEC = next(
    m for s in load_service_specs() for m in s.methods if m.path == "/openframe.v1.DeviceService/GetDevice"
)
DETAIL = "range-check-detail-7f3a"  # must not reach the caller


class _Caller:
    name = "openframe"
    default_timeout = 5.0

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        raise AssertionError("never called")

    async def aclose(self) -> None:
        return None


class _StatusFails(MethodHandler):
    async def exchange(self, request: Message, *, deadline: float, context: HandlerContext) -> Message:
        raise RuntimeError("the upstream's answer was odd")

    def status_of(self, exc: Exception) -> status_pb2.Status:
        raise ValueError(DETAIL)


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    handler = _StatusFails(SPEC, _Caller())
    server = grpc.aio.server()
    rpc = grpc.unary_unary_rpc_method_handler(
        handler.handle,
        request_deserializer=devices_pb2.GetDeviceRequest.FromString,
        response_serializer=devices_pb2.Device.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("openframe.v1.DeviceService", {"GetDevice": rpc}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
        yield chan
    await server.stop(None)


async def test_a_status_that_cannot_be_built_leaves_as_internal(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary(
        SPEC.path,
        request_serializer=devices_pb2.GetDeviceRequest.SerializeToString,
        response_deserializer=devices_pb2.Device.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=5)
    error = caught.value
    assert error.code() == grpc.StatusCode.INTERNAL, error.details()
    assert error.details() == "internal error in mesh-adapter (ValueError); see the adapter's log"
    assert DETAIL not in str(error.debug_error_string())
    status = rpc_status.from_call(error)
    assert status is not None and status.details, "the rich status travels too"
