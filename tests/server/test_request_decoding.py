"""The tolerant-deserializer wrapping is done once per method handler, not per call."""

from __future__ import annotations

from typing import Any

import grpc
from openframe.v1 import devices_pb2

from adapter.server.request_decoding import UndecodableRequest, guarded_handler


async def _echo(request: Any, context: Any) -> Any:
    return request


def test_a_method_handler_is_wrapped_once_and_reused() -> None:
    handler = grpc.unary_unary_rpc_method_handler(
        _echo,
        request_deserializer=devices_pb2.GetDeviceRequest.FromString,
        response_serializer=devices_pb2.Device.SerializeToString,
    )
    guarded = guarded_handler(handler)
    assert guarded is not handler
    assert guarded_handler(handler) is guarded  # the server resolves the same handler each call
    assert isinstance(guarded.request_deserializer(b"\xff\xff"), UndecodableRequest)
    assert guarded.request_deserializer(b"\n\x07dev_001") == devices_pb2.GetDeviceRequest(device_id="dev_001")
