"""The field named for a request the protobuf parser refuses (table)."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError
from octospine.v1 import tasks_pb2
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.server.wire_diagnosis import MAX_FIELDS, locate_decode_failure


def _deep_metadata(levels: int) -> bytes:
    inner = struct_pb2.Struct()
    for _ in range(levels):
        outer = struct_pb2.Struct()
        outer.fields["a"].struct_value.CopyFrom(inner)
        inner = outer
    request = alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(title="x"))
    request.alert.metadata.CopyFrom(inner)
    return request.SerializeToString()


CASES = [
    (devices_pb2.GetDeviceRequest, b"\x0a\x02\xff\xfe", "device_id", "UTF-8"),
    (devices_pb2.GetDeviceRequest, b"\x0a\x09dev", "device_id", "ends before"),
    (devices_pb2.GetDeviceRequest, b"\xff\xff\xff", "", "truncated"),
    (devices_pb2.GetDeviceRequest, b"\x0f", "device_id", "wire type 7"),
    (devices_pb2.GetDeviceRequest, b"\x00", "", "field number 0"),
    (alerts_pb2.CreateAlertRequest, b"\x0a\x04\x12\x02\xc3\x28", "alert.title", "UTF-8"),
    (
        tasks_pb2.CreateTaskRequest,
        tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(parameters={"k": "v"})).SerializeToString()[:-1],
        "task",  # the outermost length is the one that overruns
        "ends before",
    ),
    (alerts_pb2.CreateAlertRequest, _deep_metadata(60), "alert.metadata", "levels deep"),
]


@pytest.mark.parametrize(("cls", "data", "field", "problem"), CASES)
def test_names_the_broken_field(cls, data: bytes, field: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DecodeError):
        cls.FromString(data)  # the premise: the real parser refuses it
    found = locate_decode_failure(cls.DESCRIPTOR, data)
    assert found is not None
    assert found[0].startswith(field) if field else found[0] == ""
    assert problem in found[1]


def test_a_valid_request_has_nothing_to_report() -> None:
    data = alerts_pb2.CreateAlertRequest(
        alert=alerts_pb2.Alert(title="ü", metadata={"a": [1, "b"]})
    ).SerializeToString()
    assert locate_decode_failure(alerts_pb2.CreateAlertRequest.DESCRIPTOR, data) is None
    assert locate_decode_failure(None, b"\x0a\x02\xff\xfe") is None  # no descriptor: no field to name


#: An unknown varint field (number 15): the walk looks at it and goes on.
UNKNOWN_FIELD = b"\x78\x01"
BROKEN_DEVICE_ID = b"\x0a\x09dev"


@pytest.mark.parametrize(
    ("fields_before", "named"),
    [(0, True), (MAX_FIELDS - 1, True), (MAX_FIELDS, False), (2 * 1024 * 1024 - 8, False)],
)
def test_the_walk_looks_at_max_fields_fields_at_most(fields_before: int, named: bool) -> None:
    """A broken field past the budget is not named: the walk is Python on the event
    loop, and 2 million fields held it ~2 s (the last row is nearly 4 MiB)."""
    data = UNKNOWN_FIELD * fields_before + BROKEN_DEVICE_ID
    with pytest.raises(DecodeError):
        devices_pb2.GetDeviceRequest.FromString(data)
    found = locate_decode_failure(devices_pb2.GetDeviceRequest.DESCRIPTOR, data)
    assert found == (("device_id", "declares 9 bytes but the request ends before") if named else None)


def _alert_holding(fields: int) -> bytes:
    """CreateAlertRequest.alert (field 1) holding ``fields`` unknown fields."""
    inner = UNKNOWN_FIELD * fields
    assert len(inner) < 2**14  # a two-byte length
    return b"\x0a" + bytes([len(inner) & 0x7F | 0x80, len(inner) >> 7]) + inner


@pytest.mark.parametrize(("inner_fields", "named"), [(MAX_FIELDS - 2, True), (MAX_FIELDS, False)])
def test_the_budget_counts_fields_at_every_depth(inner_fields: int, named: bool) -> None:
    data = _alert_holding(inner_fields) + b"\x12\x09key"  # request_id (2): length past the end
    with pytest.raises(DecodeError):
        alerts_pb2.CreateAlertRequest.FromString(data)
    found = locate_decode_failure(alerts_pb2.CreateAlertRequest.DESCRIPTOR, data)
    assert (found is not None and found[0] == "request_id") if named else found is None
