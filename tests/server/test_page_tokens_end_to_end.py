"""Page tokens through a real channel: they page, and a forged or altered one is
INVALID_ARGUMENT before anything is sent (a forged page size of 100000 once went
upstream as per_page=100000)."""

from __future__ import annotations

import base64

import grpc
import orjson
import pytest
from openframe.v1 import devices_pb2, devices_pb2_grpc

from simulator import Simulator

from .hostile import field_violations

C = grpc.StatusCode


def _forged(fingerprint_source: str = "") -> str:
    doc = {"v": 1, "s": "page", "p": 1, "n": 100000, "f": fingerprint_source}
    return base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=")


async def test_tokens_page_and_forgeries_are_refused(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    devices = stub(devices_pb2_grpc.DeviceServiceStub)
    first = await devices.ListDevices(devices_pb2.ListDevicesRequest(page_size=5), timeout=10)
    assert first.next_page_token
    second = await devices.ListDevices(
        devices_pb2.ListDevicesRequest(page_size=5, page_token=first.next_page_token), timeout=10
    )
    assert {d.id for d in second.devices}.isdisjoint(d.id for d in first.devices)

    sent = len(simulator.requests)
    token = first.next_page_token
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (_forged(), tampered, token + ".x", "x" * 5000):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await devices.ListDevices(devices_pb2.ListDevicesRequest(page_size=5, page_token=bad), timeout=10)
        assert info.value.code() == C.INVALID_ARGUMENT, info.value.details()
        assert [f for f, _ in field_violations(info.value)] == ["page_token"]
    assert len(simulator.requests) == sent
    assert not [r for r in simulator.requests if ("per_page", "100000") in r.query]
