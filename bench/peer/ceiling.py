"""The Python ceiling: a plain grpc.aio server answering every GetDevice with one
fixed Device (decoded once, with protobuf's own json_format, from the same JSON
the compiled upstream serves). No interceptor, no upstream: what grpc.aio alone
costs per call.

With ``--upstream`` it is the floor instead: each call also GETs the device from
the upstream with a bare aiohttp session (body read, not decoded) before
answering the fixed Device: what grpc.aio plus one aiohttp exchange cost in one
process, before any of the adapter's own work.

With ``--client raw`` the exchange is the cheapest one possible instead: a request
written as fixed bytes on a pooled keep-alive connection, and an answer read up to
its ``Content-Length`` by an asyncio protocol (no chunked bodies, no TLS, no
redirects, no error handling: a lower bound for any HTTP client inside grpc.aio,
to size what replacing aiohttp could buy, never a client to ship).

With ``--accept-ahead N`` grpc core may hand it N calls before its loop asks for
the next one, as the adapter's ``grpc.accept_ahead`` does (adapter/server/accept_ahead.py);
1, the default, is grpc.aio as shipped: the issue's plain ceiling.

    python -m bench.peer.ceiling --body bench/peer/device.json \\
        [--upstream http://127.0.0.1:PORT [--client raw]] [--accept-ahead N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.protobuf import json_format
from openframe.v1 import devices_pb2


def fixed_device(body: Path) -> devices_pb2.Device:
    return json_format.Parse(body.read_bytes(), devices_pb2.Device(), ignore_unknown_fields=True)


class _RawExchange(asyncio.Protocol):
    """One keep-alive connection: writes a GET, reads one answer with a Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._answer: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0 or self._answer is None:
            return
        head = self._buffer[:head_end].lower()
        at = head.find(b"content-length:")
        line_end = head.find(b"\r\n", at)
        length = int(head[at + 15 : line_end if line_end > 0 else None])
        if len(self._buffer) >= head_end + 4 + length:
            body = self._buffer[head_end + 4 : head_end + 4 + length]
            self._buffer = self._buffer[head_end + 4 + length :]
            if not self._answer.done():  # a call ghz cancelled as its run ended
                self._answer.set_result(body)

    async def get(self, request: bytes) -> bytes:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            return await self._answer
        finally:
            self._answer = None


def handler(
    device: devices_pb2.Device, upstream: str = "", client: str = "aiohttp"
) -> grpc.GenericRpcHandler[Any, Any]:
    # A generic handler, as the adapter registers its own (and no generated
    # *_pb2_grpc module, so any grpcio version can run it).
    session: aiohttp.ClientSession | None = None
    idle: list[_RawExchange] = []
    host, _, port = upstream.removeprefix("http://").partition(":")

    async def get_device(
        request: devices_pb2.GetDeviceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> object:
        nonlocal session
        if upstream and client == "raw":
            connection = idle.pop() if idle else None
            if connection is None:
                _, connection = await asyncio.get_running_loop().create_connection(
                    _RawExchange, host, int(port)
                )
            await connection.get(
                b"GET /v1/devices/%s HTTP/1.1\r\nHost: %s\r\n\r\n"
                % (request.device_id.encode(), host.encode())
            )
            idle.append(connection)
        elif upstream:
            session = session or aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
            async with session.get(f"{upstream}/v1/devices/{request.device_id}") as response:
                await response.read()
        return device

    method = grpc.unary_unary_rpc_method_handler(
        get_device,
        request_deserializer=devices_pb2.GetDeviceRequest.FromString,
        response_serializer=devices_pb2.Device.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("openframe.v1.DeviceService", {"GetDevice": method})


async def serve(
    body: Path, port: int, *, interceptor: bool, upstream: str, client: str = "aiohttp", accept_ahead: int = 1
) -> None:
    interceptors = []
    if interceptor:  # what the OpenTelemetry interceptor alone costs (profiling, not a bench arm)
        from opentelemetry.instrumentation.grpc import aio_server_interceptor
        from opentelemetry.sdk.trace import TracerProvider

        skip = os.environ.get("CEILING_INTERCEPTOR_SKIPS") == "1"  # filtered out: dispatch cost only
        interceptors.append(
            aio_server_interceptor(  # type: ignore[no-untyped-call]
                tracer_provider=TracerProvider(), filter_=(lambda _d: False) if skip else None
            )
        )
    server = grpc.aio.server(interceptors=interceptors)
    handlers = (handler(fixed_device(body), upstream, client),)
    server.add_generic_rpc_handlers(handlers)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    if accept_ahead > 1:  # imported only then: the plain ceiling runs on any grpcio, adapter or not
        from adapter.server.accept_ahead import AcceptAhead

        AcceptAhead(server, handlers=handlers, interceptors=interceptors, extra=accept_ahead - 1).start()
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    from adapter.event_loop import run as run_event_loop

    parser = argparse.ArgumentParser()
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--otel-interceptor", action="store_true")
    parser.add_argument("--upstream", default="", help="the floor: GET this upstream in every call")
    parser.add_argument(
        "--client", choices=("aiohttp", "raw"), default="aiohttp", help="raw: the lower bound"
    )
    # asyncio's loop by default: the plain grpc.aio ceiling; uvloop (the adapter's
    # default loop) to read the adapter against a ceiling on the same loop.
    parser.add_argument("--event-loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--accept-ahead", type=int, default=1, help="pending accepts (1: grpc.aio's own)")
    args = parser.parse_args()
    run_event_loop(
        serve(
            args.body,
            args.port,
            interceptor=args.otel_interceptor,
            upstream=args.upstream,
            client=args.client,
            accept_ahead=args.accept_ahead,
        ),
        args.event_loop,
    )
