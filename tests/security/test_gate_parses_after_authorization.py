"""The gate parses a request only once its caller is authorized: the authorization
gate and the request-decoding interceptor over a real grpc.aio port, with a
deserializer that counts what it parses. grpc.aio parses a unary request before
any handler runs, so without the gate taking the parsing over, a caller with no
credentials could make the adapter parse (and, for a broken request, diagnose)
up to 4 MiB on its event loop before being refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc import aio
from grpc_status import rpc_status
from openframe.v1 import devices_pb2

from adapter.config.security import JwtSettings
from adapter.security.audit import AuditLog
from adapter.security.authorizer import CallAuthorizer
from adapter.security.jwt_verifier import JwtVerifier
from adapter.security.policy import Grant, Policy
from adapter.server.request_decoding import RequestDecodingInterceptor

from .jwt_helpers import AUDIENCE, ISSUER, Issuer

SERVICE = "openframe.v1.DeviceService"
GET_DEVICE = f"/{SERVICE}/GetDevice"
LIST_DEVICES = f"/{SERVICE}/ListDevices"  # served as a server stream here, to gate one
READ = "openframe.devices.read"
#: A string field cut short: the request's bytes do not parse.
BROKEN = b"\x0a\x05ab"


class _CountingParse:
    """``GetDeviceRequest.FromString`` that counts: bound to the message class as
    generated code's is, so the decoding interceptor still names a broken field."""

    __self__ = devices_pb2.GetDeviceRequest

    def __init__(self) -> None:
        self.parsed: list[bytes] = []

    def __call__(self, data: bytes) -> devices_pb2.GetDeviceRequest:
        self.parsed.append(data)
        return devices_pb2.GetDeviceRequest.FromString(data)


@dataclass
class Served:
    parse: _CountingParse = field(default_factory=_CountingParse)
    handled: list[object] = field(default_factory=list)

    @property
    def parsed(self) -> list[bytes]:
        return self.parse.parsed


@pytest_asyncio.fixture
async def gated(tmp_path: Path) -> AsyncIterator[tuple[aio.Channel, Served, Issuer]]:
    issuer = Issuer()
    settings = JwtSettings(
        jwks_file=issuer.write(tmp_path / "jwks.json"), issuer=ISSUER, audiences=[AUDIENCE]
    )
    served = Served()

    async def get_device(request: Any, context: Any) -> devices_pb2.Device:
        served.handled.append(request)
        return devices_pb2.Device(id=request.device_id)

    async def stream_devices(request: Any, context: Any) -> AsyncIterator[devices_pb2.Device]:
        served.handled.append(request)
        yield devices_pb2.Device(id=request.device_id)

    handlers = {
        "GetDevice": grpc.unary_unary_rpc_method_handler(
            get_device, served.parse, devices_pb2.Device.SerializeToString
        ),
        "ListDevices": grpc.unary_stream_rpc_method_handler(
            stream_devices, served.parse, devices_pb2.Device.SerializeToString
        ),
    }
    authorizer = CallAuthorizer(
        permissions={GET_DEVICE: READ, LIST_DEVICES: READ},
        policy=lambda: Policy(grants=(Grant(principals=("jwt:reader",), permissions=(READ,)),)),
        jwt=JwtVerifier(settings),
        audit=AuditLog(),
    )
    # Outermost first, as the adapter assembles them (adapter/assembly/server_parts.py).
    server = aio.server(interceptors=[authorizer, RequestDecodingInterceptor()])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, served, issuer
    finally:
        await server.stop(None)


async def _call(channel: aio.Channel, method: str, data: bytes, token: str | None) -> list[bytes]:
    """Sends ``data`` as it is (bytes, so a broken request reaches the server)."""
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    if method == GET_DEVICE:
        unary = channel.unary_unary(method)
        return [cast(bytes, await unary(data, metadata=metadata))]
    stream = channel.unary_stream(method)
    return [cast(bytes, item) async for item in stream(data, metadata=metadata)]


def _reason(error: aio.AioRpcError) -> str:
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None and status.details, error
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


REQUEST = devices_pb2.GetDeviceRequest(device_id="dev_001").SerializeToString()


@pytest.mark.parametrize("method", [GET_DEVICE, LIST_DEVICES])
@pytest.mark.parametrize("data", [REQUEST, BROKEN], ids=["valid", "broken"])
@pytest.mark.parametrize(
    ("who", "code", "reason"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED, "NO_CREDENTIALS"),
        ("not-a-jwt", grpc.StatusCode.UNAUTHENTICATED, "MALFORMED_TOKEN"),
        ("jwt:stranger", grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
    ],
)
async def test_a_refused_caller_s_request_is_never_parsed(
    gated: tuple[aio.Channel, Served, Issuer],
    method: str,
    data: bytes,
    who: str | None,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    channel, served, issuer = gated
    token = issuer.token("stranger") if who == "jwt:stranger" else who
    with pytest.raises(aio.AioRpcError) as info:
        await _call(channel, method, data, token)
    # The refusal, not INVALID_ARGUMENT: nothing of the request was looked at.
    assert info.value.code() == code
    assert _reason(info.value) == reason
    assert served.parsed == [] and served.handled == []


@pytest.mark.parametrize("method", [GET_DEVICE, LIST_DEVICES])
async def test_an_authorized_caller_s_request_is_parsed_once_and_served(
    gated: tuple[aio.Channel, Served, Issuer], method: str
) -> None:
    channel, served, issuer = gated
    answers = await _call(channel, method, REQUEST, issuer.token("reader"))
    assert [devices_pb2.Device.FromString(a).id for a in answers] == ["dev_001"]
    assert served.parsed == [REQUEST]
    assert [type(r) for r in served.handled] == [devices_pb2.GetDeviceRequest]


@pytest.mark.parametrize("method", [GET_DEVICE, LIST_DEVICES])
async def test_an_authorized_caller_s_broken_request_is_invalid_argument_naming_the_field(
    gated: tuple[aio.Channel, Served, Issuer], method: str
) -> None:
    channel, served, issuer = gated
    with pytest.raises(aio.AioRpcError) as info:
        await _call(channel, method, BROKEN, issuer.token("reader"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(cast(grpc.Call, info.value))
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["device_id"]
    assert served.parsed == [BROKEN]  # parsed after the gate, then refused before the handler
    assert served.handled == []
