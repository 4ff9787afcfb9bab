"""A request a client compressed, against the whole adapter over a real channel: gRPC
core inflates a whole message before it checks its size, so by default the adapter
accepts no compressed request and core refuses one (UNIMPLEMENTED) without inflating
it; nothing reaches a handler or the vendor."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

import grpc
from openframe.v1 import devices_pb2

from simulator import Simulator

from .hostile import adapter_with_events, requests_logged

GET_DEVICE = "/openframe.v1.DeviceService/GetDevice"

# A client in its own process: compressing the payload costs the test's process nothing.
_CLIENT = textwrap.dedent(
    """
    import sys, grpc
    from openframe.v1 import devices_pb2
    request = devices_pb2.GetDeviceRequest(device_id="0" * int(sys.argv[2])).SerializeToString()
    options = [("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(sys.argv[1], options=options) as channel:
        call = channel.unary_unary(sys.argv[3])
        try:
            call(request, compression=grpc.Compression.Gzip, timeout=60)
            print("OK")
        except grpc.RpcError as error:
            print(error.code().name, error.details())
    """
)


async def _compressed_call(address: str, size: int) -> tuple[str, float]:
    """The outcome of a gzip-compressed GetDevice whose request holds ``size`` bytes,
    and the CPU seconds this process (the adapter) spent meanwhile."""
    cpu = time.process_time()
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLIENT, address, str(size), GET_DEVICE, stdout=subprocess.PIPE
    )
    out, _ = await client.communicate()
    return out.decode().strip(), time.process_time() - cpu


async def test_a_compressed_request_is_refused_before_it_is_inflated(simulator: Simulator) -> None:
    async with adapter_with_events(simulator) as adapter:
        address = f"127.0.0.1:{adapter.grpc_port}"
        before = await requests_logged(simulator)
        small, _ = await _compressed_call(address, 10)
        # ~200 KB of gzip that inflate to 200 MB: a second of CPU and 200 MB of memory
        # when inflated, far past max_receive_message_bytes (4 MiB).
        bomb, spent = await _compressed_call(address, 200 * 1024 * 1024)
        async with grpc.aio.insecure_channel(address) as channel:
            plain = await channel.unary_unary(
                GET_DEVICE,
                request_serializer=devices_pb2.GetDeviceRequest.SerializeToString,
                response_deserializer=devices_pb2.Device.FromString,
            )(devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=10)
        assert await requests_logged(simulator) == before + 1  # the plain call only
    assert small.startswith("UNIMPLEMENTED") and "gzip" in small, small
    assert bomb.startswith("UNIMPLEMENTED"), bomb
    assert spent < 0.4, f"{spent:.2f} s of the adapter's CPU for a refused request"
    assert plain.id == "dev_001"


async def test_compressed_requests_are_served_when_accepted(simulator: Simulator) -> None:
    async with adapter_with_events(simulator, grpc={"accept_compressed_requests": True}) as adapter:
        small, _ = await _compressed_call(f"127.0.0.1:{adapter.grpc_port}", 10)
    # Served: the vendor has no device "0000000000", so its 404 comes back.
    assert small.startswith("NOT_FOUND"), small
