"""The field named for a request the protobuf parser refuses (table)."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError
from octospine.v1 import tasks_pb2
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.server.wire_diagnosis import locate_decode_failure


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
