"""The grpc.aio ceiling of the peer bench, over a real channel: as shipped, and with
calls accepted ahead as the adapter accepts them (``--accept-ahead``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc
import pytest
from openframe.v1 import devices_pb2

from bench.peer.ceiling import fixed_device

ROOT = Path(__file__).resolve().parents[2]
BODY = ROOT / "bench" / "peer" / "device.json"


async def _get_devices(address: str, count: int) -> list[devices_pb2.Device]:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(
            "/openframe.v1.DeviceService/GetDevice",
            request_serializer=devices_pb2.GetDeviceRequest.SerializeToString,
            response_deserializer=devices_pb2.Device.FromString,
        )
        return list(
            await asyncio.gather(
                *(call(devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=10) for _ in range(count))
            )
        )


@pytest.mark.parametrize("accept_ahead", [1, 8])
async def test_the_ceiling_answers_its_fixed_device(accept_ahead: int) -> None:
    ceiling = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.peer.ceiling", "--body", str(BODY), "--accept-ahead", str(accept_ahead),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert ceiling.stdout is not None
        line = (await asyncio.wait_for(ceiling.stdout.readline(), 30)).decode()
        assert line.startswith("listening on "), line
        answers = await _get_devices(line.removeprefix("listening on ").strip(), 32)
        assert answers == [fixed_device(BODY)] * 32
    finally:
        ceiling.terminate()
        await asyncio.wait_for(ceiling.wait(), 10)
