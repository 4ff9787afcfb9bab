"""Values protobuf accepts but no upstream call can carry (table)."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from meshadapter.v1 import events_pb2
from octospine.v1 import tasks_pb2
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.transcoding.errors import BindingError
from adapter.transcoding.request_validation import RequestValidator

TS = timestamp_pb2.Timestamp

BAD: list[tuple[Message, str]] = [
    (devices_pb2.ListDevicesRequest(status=12345), "status"),  # type: ignore[arg-type]
    (alerts_pb2.ListAlertsRequest(updated_after=TS(seconds=2**62)), "updated_after"),
    (alerts_pb2.ListAlertsRequest(updated_after=TS(seconds=-62_135_596_801)), "updated_after"),
    (alerts_pb2.ListAlertsRequest(updated_after=TS(seconds=0, nanos=1_000_000_000)), "updated_after"),
    (alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(severity=-3)), "alert.severity"),  # type: ignore[arg-type]
    (
        alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(metadata={"x": float("nan")})),
        "alert.metadata[x]",
    ),
    (
        alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(metadata={"x": {"y": [1, float("inf")]}})),
        "alert.metadata[x][y][1]",
    ),
    (events_pb2.SubscribeRequest(start_from=7), "start_from"),  # type: ignore[arg-type]
]

GOOD: list[Message] = [
    devices_pb2.ListDevicesRequest(status=devices_pb2.DEVICE_STATUS_ONLINE),
    alerts_pb2.ListAlertsRequest(updated_after=TS(seconds=253_402_300_799, nanos=999_999_999)),
    alerts_pb2.ListAlertsRequest(updated_after=TS(seconds=-62_135_596_800)),
    alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(metadata={"x": [1.5, None, "s", {"y": True}]})),
    tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(parameters=struct_pb2.Struct())),
]


@pytest.mark.parametrize(("message", "field"), BAD)
def test_refused_values_name_the_field(message: Message, field: str) -> None:
    with pytest.raises(BindingError) as info:
        RequestValidator(message.DESCRIPTOR).check(message)
    assert info.value.field == field


@pytest.mark.parametrize("message", GOOD)
def test_valid_values_pass(message: Message) -> None:
    RequestValidator(message.DESCRIPTOR).check(message)


def test_duration_range_and_sign() -> None:
    from adapter.transcoding.request_validation import _duration

    _duration(duration_pb2.Duration(seconds=-1, nanos=-5), "d")
    for bad in (
        duration_pb2.Duration(seconds=315_576_000_001),
        duration_pb2.Duration(seconds=1, nanos=-1),
        duration_pb2.Duration(nanos=1_000_000_000),
    ):
        with pytest.raises(BindingError):
            _duration(bad, "d")
