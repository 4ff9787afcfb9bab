"""Upstream URLs and bodies past the configured sizes are refused, naming the field."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message
from octospine.v1 import tasks_pb2
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.config.settings import PaginationSettings
from adapter.descriptors.method_spec import MethodSpec
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.transcoding.request_limits import RequestLimits

LIMITS = RequestLimits(max_url_bytes=300, max_body_bytes=2048)

CASES: list[tuple[str, Message, str]] = [
    ("/openframe.v1.DeviceService/GetDevice", devices_pb2.GetDeviceRequest(device_id="d" * 400), "device_id"),
    (
        "/openframe.v1.AlertService/ListAlerts",
        alerts_pb2.ListAlertsRequest(device_id="é" * 100),  # 600 bytes once percent-encoded
        "device_id",
    ),
    (
        "/openframe.v1.AlertService/CreateAlert",
        alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(title="t", description="x" * 3000)),
        "alert",
    ),
    (
        "/octospine.v1.TaskService/CancelTask",
        tasks_pb2.CancelTaskRequest(task_id="t", reason="r" * 3000),
        "reason",
    ),
]


@pytest.mark.parametrize(("rpc", "message", "field"), CASES)
def test_oversized_requests_name_the_field(
    specs: dict[str, MethodSpec], rpc: str, message: Message, field: str
) -> None:
    transcoder = MethodTranscoder(specs[rpc], JsonCodec(), PaginationSettings(), limits=LIMITS)
    with pytest.raises(BindingError) as info:
        transcoder.bind(message)
    assert info.value.field == field
    assert "at most" in info.value.description


def test_within_the_limits_binds(specs: dict[str, MethodSpec]) -> None:
    transcoder = MethodTranscoder(
        specs["/openframe.v1.DeviceService/GetDevice"], JsonCodec(), PaginationSettings(), limits=LIMITS
    )
    assert transcoder.bind(devices_pb2.GetDeviceRequest(device_id="a\nb")).request.path == "/v1/devices/a%0Ab"
