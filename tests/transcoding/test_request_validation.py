"""Values protobuf accepts but no upstream call can carry (table)."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from meshadapter.v1 import events_pb2
from octospine.v1 import tasks_pb2
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.descriptors.catalog import proto_files
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


def _holds_refusable(descriptor, seen: frozenset[str] = frozenset()) -> bool:  # type: ignore[no-untyped-def]
    """The skip's rule written the plain way (every path of fields, cycles cut)."""
    if descriptor.full_name in (
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
    ):
        return True
    if descriptor.full_name in seen:
        return False
    for field in descriptor.fields:
        if field.type in (field.TYPE_ENUM, field.TYPE_DOUBLE, field.TYPE_FLOAT):
            return True
        if field.message_type is not None and _holds_refusable(
            field.message_type, seen | {descriptor.full_name}
        ):
            return True
    return False


def _message_types():  # type: ignore[no-untyped-def]
    found = {}
    pending = [m for f in proto_files() for m in f.message_types_by_name.values()]
    while pending:
        descriptor = pending.pop()
        if descriptor.full_name not in found:
            found[descriptor.full_name] = descriptor
            pending += descriptor.nested_types
    return [found[name] for name in sorted(found)]


def test_types_that_cannot_hold_a_refused_value_are_not_walked() -> None:
    assert not RequestValidator(devices_pb2.GetDeviceRequest.DESCRIPTOR)._walked
    for message, _ in BAD:  # every type with a refusal above is walked
        assert RequestValidator(message.DESCRIPTOR)._walked
    assert RequestValidator(struct_pb2.Struct.DESCRIPTOR)._walked  # recursive, holds numbers
    types = _message_types()
    assert len(types) > 50
    for descriptor in types:  # every message type of the protos, against the plain rule
        assert RequestValidator(descriptor)._walked == _holds_refusable(descriptor), descriptor.full_name
    assert any(not RequestValidator(d)._walked for d in types)
