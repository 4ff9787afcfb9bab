"""The tolerant-deserializer wrapping: done once per method handler, not per call, and
refusing an undecodable request whatever shape of async behavior it wraps."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from openframe.v1 import devices_pb2

from adapter.server.handlers import MethodHandler
from adapter.server.request_decoding import (
    UndecodableRequest,
    guarded_handler,
    refuse_undecodable,
    refuses_undecodable,
)


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


class _Context:
    """What the guard uses of grpc.aio's context: the final status, set on it."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.trailing_metadata = metadata


class _AsyncCallable:
    async def __call__(self, request: Any, context: Any) -> Any:
        return request


@pytest.mark.parametrize("behavior", [_echo, _AsyncCallable()], ids=["coroutine", "async-call"])
async def test_every_shape_of_unary_behavior_answers_and_refuses_undecodable(behavior: Any) -> None:
    handler = grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=devices_pb2.GetDeviceRequest.FromString,
        response_serializer=devices_pb2.Device.SerializeToString,
    )
    guarded = guarded_handler(handler)
    request = guarded.request_deserializer(b"\n\x07dev_001")
    assert await guarded.unary_unary(request, _Context()) == request
    context = _Context()
    # Refused without running the behavior (which would echo the request back).
    assert await guarded.unary_unary(guarded.request_deserializer(b"\xff\xff"), context) is None
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(context.trailing_metadata).keys() == {"grpc-status-details-bin"}


async def test_a_behavior_that_refuses_undecodable_requests_itself_is_not_wrapped() -> None:
    @refuses_undecodable
    async def checked(request: Any, context: Any) -> Any:
        if isinstance(request, UndecodableRequest):
            refuse_undecodable(context, request)
            return None
        return request

    handler = grpc.unary_unary_rpc_method_handler(
        checked,
        request_deserializer=devices_pb2.GetDeviceRequest.FromString,
        response_serializer=devices_pb2.Device.SerializeToString,
    )
    guarded = guarded_handler(handler)
    assert guarded.unary_unary is checked  # no wrapper's coroutine a call
    assert isinstance(guarded.request_deserializer(b"\xff\xff"), UndecodableRequest)  # still tolerant
    context = _Context()
    assert await guarded.unary_unary(guarded.request_deserializer(b"\xff\xff"), context) is None
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(context.trailing_metadata).keys() == {"grpc-status-details-bin"}
    # The adapter's own RPC behaviour is such a behavior (tests/server/test_hostile_table.py
    # sends it undecodable bytes end to end).
    assert getattr(MethodHandler.handle, "_refuses_undecodable_requests", False)
