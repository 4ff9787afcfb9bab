"""Caller input protobuf accepts but no upstream call can carry: each is
INVALID_ARGUMENT with a BadRequest naming the field, answered before anything
is sent upstream (never UNKNOWN or INTERNAL)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from meshadapter.v1 import events_pb2
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.server.event_service import encode_position
from simulator import Simulator

from .hostile import adapter_with_events, call_raw, field_violations, requests_logged

C = grpc.StatusCode

# (method, request bytes, field the BadRequest names ("" = the request as a whole))
CASES: list[tuple[str, bytes, str]] = [
    ("/openframe.v1.DeviceService/GetDevice", b"\xff\xff\xff", ""),
    ("/openframe.v1.DeviceService/GetDevice", b"\x0a\x02\xff\xfe", "device_id"),  # invalid UTF-8
    ("/openframe.v1.DeviceService/GetDevice", b"\x0a\x09dev", "device_id"),  # length past the end
    (
        "/openframe.v1.DeviceService/ListDevices",
        devices_pb2.ListDevicesRequest(status=12345).SerializeToString(),
        "status",
    ),  # type: ignore[arg-type]
    (
        "/openframe.v1.AlertService/ListAlerts",
        alerts_pb2.ListAlertsRequest(
            updated_after=timestamp_pb2.Timestamp(seconds=2**62)
        ).SerializeToString(),
        "updated_after",
    ),
    (
        "/openframe.v1.AlertService/ListAlerts",
        alerts_pb2.ListAlertsRequest(
            updated_after=timestamp_pb2.Timestamp(seconds=1, nanos=-1)
        ).SerializeToString(),
        "updated_after",
    ),
    (
        "/openframe.v1.AlertService/CreateAlert",
        alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(title="t", severity=99)).SerializeToString(),  # type: ignore[arg-type]
        "alert.severity",
    ),
    (
        "/openframe.v1.AlertService/CreateAlert",
        alerts_pb2.CreateAlertRequest(
            alert=alerts_pb2.Alert(title="t"), request_id="a\r\nX-Evil: 1"
        ).SerializeToString(),
        "request_id",
    ),
    (
        "/openframe.v1.AlertService/CreateAlert",
        alerts_pb2.CreateAlertRequest(
            alert=alerts_pb2.Alert(title="t"), request_id="ключ"
        ).SerializeToString(),
        "request_id",
    ),
    ("/grpc.health.v1.Health/Check", b"\x0a\x02\xff\xfe", "service"),
    # Nearly 4 MiB of unknown one-byte fields, then a broken device_id: too much to walk
    # for a field name (it held the event loop ~2 s), so the request as a whole.
    ("/openframe.v1.DeviceService/GetDevice", b"\x78\x01" * (2 * 1024 * 1024 - 8) + b"\x0a\x09dev", ""),
]


def _subscribe(**fields: Any) -> bytes:
    message: Message = events_pb2.SubscribeRequest(**fields)
    return message.SerializeToString()


STREAM_CASES: list[tuple[bytes, str]] = [
    (b"\xff\xff\xff", ""),
    (_subscribe(resume_from=encode_position({"openframe.alerts": {0: -5}})), "resume_from"),
    (_subscribe(resume_from=encode_position({"openframe.alerts": {-1: 3}})), "resume_from"),
    (_subscribe(resume_from=encode_position({"openframe.alerts": {0: 2**63}})), "resume_from"),
    (_subscribe(resume_from="not a position"), "resume_from"),
    (_subscribe(start_from=7), "start_from"),
    (_subscribe(topics=["secret.internal"]), "topics"),
    # Checked against every record on the event loop: bounded (4 MiB held ~600,000).
    (_subscribe(filter=events_pb2.EventFilter(types=[f"t{i}" for i in range(65)])), "filter.types"),
    (_subscribe(filter=events_pb2.EventFilter(keys=[f"k{i}" for i in range(1025)])), "filter.keys"),
]


@pytest.mark.parametrize(
    ("method", "payload", "field"),
    CASES,
    ids=[f"{m.rsplit('/', 1)[1]}-{f or 'bytes'}-{i}" for i, (m, _, f) in enumerate(CASES)],
)
async def test_unary_caller_input_is_invalid_argument(
    simulator: Simulator, method: str, payload: bytes, field: str
) -> None:
    async with adapter_with_events(simulator) as server:
        before = await requests_logged(simulator)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            error = await call_raw(channel, method, payload)
        assert error is not None, "the hostile request succeeded"
        assert error.code() == C.INVALID_ARGUMENT, (error.code(), error.details())
        assert [f for f, _ in field_violations(error)] == [field], error.details()
        assert await requests_logged(simulator) == before


@pytest.mark.parametrize(("payload", "field"), STREAM_CASES, ids=[f or "bytes" for _, f in STREAM_CASES])
async def test_subscribe_input_is_invalid_argument(simulator: Simulator, payload: bytes, field: str) -> None:
    async with (
        adapter_with_events(simulator) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        error = await call_raw(channel, "/meshadapter.v1.EventService/Subscribe", payload, streaming=True)
    assert error is not None, "the hostile request succeeded"
    assert error.code() == C.INVALID_ARGUMENT, (error.code(), error.details())
    assert [f for f, _ in field_violations(error)] == [field], error.details()
