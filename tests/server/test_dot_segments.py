"""Path values that are empty, ``.`` or ``..`` once bound would make the vendor
URL point at another resource (``GetDevice(".")`` -> ``GET /v1/devices``); they
are INVALID_ARGUMENT naming the field, and nothing is sent upstream (checked in
the simulator's own request log, ``GET /_sim/requests``)."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.message import Message
from octospine.v1 import tasks_pb2, tasks_pb2_grpc
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc

from simulator import Simulator

from ..resilience.harness import error_details

C = grpc.StatusCode

# (stub class, method, request, vendor, field named in the BadRequest)
CASES: list[tuple[Any, str, Message, str, str]] = [
    (
        devices_pb2_grpc.DeviceServiceStub,
        "GetDevice",
        devices_pb2.GetDeviceRequest(device_id="."),
        "openframe",
        "device_id",
    ),
    (
        devices_pb2_grpc.DeviceServiceStub,
        "GetDevice",
        devices_pb2.GetDeviceRequest(device_id=".."),
        "openframe",
        "device_id",
    ),
    (
        tasks_pb2_grpc.TaskServiceStub,
        "DeleteTask",
        tasks_pb2.DeleteTaskRequest(task_id="."),
        "octospine",
        "task_id",
    ),
    (
        tasks_pb2_grpc.TaskServiceStub,
        "CancelTask",
        tasks_pb2.CancelTaskRequest(task_id=".."),
        "octospine",
        "task_id",
    ),
    (
        tasks_pb2_grpc.TaskServiceStub,
        "GetTask",
        tasks_pb2.GetTaskRequest(task_id=".."),
        "octospine",
        "task_id",
    ),
    (
        alerts_pb2_grpc.AlertServiceStub,
        "UpdateAlert",
        alerts_pb2.UpdateAlertRequest(alert=alerts_pb2.Alert(id="..", title="x")),
        "openframe",
        "alert.id",
    ),
]


async def _logged(sim: Simulator, vendor: str) -> int:
    url = sim.openframe_url if vendor == "openframe" else sim.octospine_url
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{url}/_sim/requests")
    answer.raise_for_status()
    return int(answer.json()["count"])


@pytest.mark.parametrize(
    ("stub_cls", "method", "request_message", "vendor", "field"),
    CASES,
    ids=[f"{m}-{i}" for i, (_, m, *_) in enumerate(CASES)],
)
async def test_dot_segments_are_invalid_and_never_sent(
    stub, simulator: Simulator, stub_cls, method, request_message, vendor, field
) -> None:  # type: ignore[no-untyped-def]
    before = await _logged(simulator, vendor)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(stub(stub_cls), method)(request_message, timeout=10)
    assert info.value.code() == C.INVALID_ARGUMENT, info.value.details()
    [violation] = error_details(info.value)["BadRequest"].field_violations
    assert violation.field == field
    assert "segment" in violation.description
    assert await _logged(simulator, vendor) == before
