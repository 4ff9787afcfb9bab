"""The Python ceiling: a plain grpc.aio server answering every GetDevice with one
fixed Device (decoded once, with protobuf's own json_format, from the same JSON
the compiled upstream serves). No interceptor, no upstream: what grpc.aio alone
costs per call.

With ``--upstream`` it is the floor instead: each call also GETs the device from
the upstream with a bare aiohttp session (body read, not decoded) before
answering the fixed Device: what grpc.aio plus one aiohttp exchange cost in one
process, before any of the adapter's own work.

    python -m bench.peer.ceiling --body bench/peer/device.json [--upstream http://127.0.0.1:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import aiohttp
import grpc
from google.protobuf import json_format
from openframe.v1 import devices_pb2


def fixed_device(body: Path) -> devices_pb2.Device:
    return json_format.Parse(body.read_bytes(), devices_pb2.Device(), ignore_unknown_fields=True)


def handler(device: devices_pb2.Device, upstream: str = "") -> grpc.GenericRpcHandler:
    # A generic handler, as the adapter registers its own (and no generated
    # *_pb2_grpc module, so any grpcio version can run it).
    session: aiohttp.ClientSession | None = None

    async def get_device(request: devices_pb2.GetDeviceRequest, context: grpc.aio.ServicerContext) -> object:
        nonlocal session
        if upstream:
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


async def serve(body: Path, port: int, *, interceptor: bool, upstream: str) -> None:
    interceptors = []
    if interceptor:  # what the OpenTelemetry interceptor alone costs (profiling, not a bench arm)
        from opentelemetry.instrumentation.grpc import aio_server_interceptor
        from opentelemetry.sdk.trace import TracerProvider

        skip = os.environ.get("CEILING_INTERCEPTOR_SKIPS") == "1"  # filtered out: dispatch cost only
        interceptors.append(
            aio_server_interceptor(
                tracer_provider=TracerProvider(), filter_=(lambda _d: False) if skip else None
            )
        )
    server = grpc.aio.server(interceptors=interceptors)
    server.add_generic_rpc_handlers((handler(fixed_device(body), upstream),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--otel-interceptor", action="store_true")
    parser.add_argument("--upstream", default="", help="the floor: GET this upstream in every call")
    args = parser.parse_args()
    asyncio.run(serve(args.body, args.port, interceptor=args.otel_interceptor, upstream=args.upstream))
