"""A fault while deciding refuses the call: the authorization gate over a real grpc.aio
port, with a verifier that raises what no refusal names (a library's bug)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc import aio
from grpc_status import rpc_status
from openframe.v1 import devices_pb2

from adapter.security.audit import AuditLog
from adapter.security.authorizer import CallAuthorizer
from adapter.security.jwt_verifier import JwtVerifier
from adapter.security.policy import Policy

GET_DEVICE = "/openframe.v1.DeviceService/GetDevice"
SECRET_TEXT = "Bearer eyJ-the-callers-token"


class _BrokenVerifier:
    async def verify(self, token: str) -> Any:
        raise RuntimeError(f"a library fault quoting {SECRET_TEXT}")


@pytest_asyncio.fixture
async def gated() -> AsyncIterator[tuple[aio.Channel, list[object]]]:
    served: list[object] = []

    async def get_device(request: Any, context: Any) -> devices_pb2.Device:
        served.append(request)
        return devices_pb2.Device(id=request.device_id)

    handler = grpc.unary_unary_rpc_method_handler(
        get_device,
        request_deserializer=devices_pb2.GetDeviceRequest.FromString,
        response_serializer=devices_pb2.Device.SerializeToString,
    )
    authorizer = CallAuthorizer(
        permissions={GET_DEVICE: "openframe.devices.read"},
        policy=lambda: Policy(),
        jwt=cast(JwtVerifier, _BrokenVerifier()),
        audit=AuditLog(),
    )
    server = aio.server(interceptors=[authorizer])
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("openframe.v1.DeviceService", {"GetDevice": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, served
    finally:
        await server.stop(None)


async def test_a_fault_while_authorizing_refuses_with_internal_and_says_nothing_of_it(
    gated: tuple[aio.Channel, list[object]], caplog: pytest.LogCaptureFixture
) -> None:
    channel, served = gated
    call = channel.unary_unary(
        GET_DEVICE,
        request_serializer=devices_pb2.GetDeviceRequest.SerializeToString,
        response_deserializer=devices_pb2.Device.FromString,
    )
    with pytest.raises(aio.AioRpcError) as info:
        await call(devices_pb2.GetDeviceRequest(device_id="d-1"), metadata=(("authorization", SECRET_TEXT),))
    error = info.value
    assert error.code() == grpc.StatusCode.INTERNAL
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None
    reason = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(reason) and reason.reason == "AUTHORIZATION_FAILED"
    assert "eyJ" not in (error.details() or "") and "fault" not in (error.details() or "")
    assert served == []  # default deny: the handler never ran
    assert "RuntimeError" in caplog.text and "eyJ" not in caplog.text
