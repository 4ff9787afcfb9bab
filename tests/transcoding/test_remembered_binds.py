"""Binds remembered by the request's bytes, for the methods whose answers the
response cache keeps: the same results as binding afresh, for every request of
the binding table, in any order; bounded; never a request that does not bind;
never a paged method."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message
from openframe.v1 import devices_pb2

from adapter.config.resilience import CacheSettings, ResilienceSettings
from adapter.config.settings import ApiKeyAuth, PaginationSettings, UpstreamSettings
from adapter.descriptors.method_spec import MethodSpec
from adapter.server.method_handlers import transcoder_for
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.transcoding.page_tokens import PageTokenSigner

from .test_request_binding import BAD, CASES

GET_DEVICE = "/openframe.v1.DeviceService/GetDevice"


def remembering(specs: dict[str, MethodSpec], codec: JsonCodec, path: str, at_most: int = 100) -> Any:
    return MethodTranscoder(specs[path], codec, PaginationSettings(), remembered_binds=at_most)


def test_every_request_of_the_table_binds_as_it_does_afresh_in_any_order(
    specs: dict[str, MethodSpec], codec: JsonCodec
) -> None:
    binders: dict[str, Any] = {}
    fresh = {i: MethodTranscoder(specs[rpc], codec, PaginationSettings()).bind(message)
             for i, (rpc, message, *_) in enumerate(CASES)}  # fmt: skip
    for order in (range(len(CASES)), reversed(range(len(CASES))), range(len(CASES))):
        for i in order:
            rpc, message = CASES[i][0], CASES[i][1]
            binder = binders.setdefault(rpc, remembering(specs, codec, rpc))
            assert binder.bind(message) == fresh[i], CASES[i]


def test_a_repeated_request_is_bound_once(specs: dict[str, MethodSpec], codec: JsonCodec) -> None:
    t = remembering(specs, codec, GET_DEVICE)
    first = t.bind(devices_pb2.GetDeviceRequest(device_id="dev_001"))
    assert t.bind(devices_pb2.GetDeviceRequest(device_id="dev_001")) is first
    other = t.bind(devices_pb2.GetDeviceRequest(device_id="dev_002"))
    assert other.request.path == "/v1/devices/dev_002"


def test_at_most_as_many_as_asked_the_oldest_forgotten_first(
    specs: dict[str, MethodSpec], codec: JsonCodec
) -> None:
    t = remembering(specs, codec, GET_DEVICE, at_most=3)
    kept = [t.bind(devices_pb2.GetDeviceRequest(device_id=f"dev_{n}")) for n in range(4)]
    remembered = t._requests._remembered
    assert remembered is not None and len(remembered) == 3
    assert t.bind(devices_pb2.GetDeviceRequest(device_id="dev_3")) is kept[3]
    again = t.bind(devices_pb2.GetDeviceRequest(device_id="dev_0"))  # forgotten: bound afresh
    assert again == kept[0] and again is not kept[0]


def test_a_large_request_is_bound_but_not_kept(specs: dict[str, MethodSpec], codec: JsonCodec) -> None:
    # The bytes are the key and a caller controls them: unknown fields bind to nothing
    # but would make each kept key as large as the gRPC message limit allows.
    unknown = b"\xfa\x3f" + b"\x90\x4e" + b"x" * 10_000  # field 1023, 10,000 bytes long
    padded = devices_pb2.GetDeviceRequest.FromString(
        devices_pb2.GetDeviceRequest(device_id="dev_001").SerializeToString() + unknown
    )
    assert len(padded.SerializeToString()) > 10_000  # the unknown field is kept (the premise)
    t = remembering(specs, codec, GET_DEVICE)
    assert t.bind(padded).request.path == "/v1/devices/dev_001"
    assert not t._requests._remembered


@pytest.mark.parametrize(("rpc", "message", "field"), BAD)
def test_a_request_that_does_not_bind_fails_every_time(
    specs: dict[str, MethodSpec], codec: JsonCodec, rpc: str, message: Message, field: str
) -> None:
    t = remembering(specs, codec, rpc)
    for _ in range(2):
        with pytest.raises(BindingError) as info:
            t.bind(message)
        assert info.value.field == field
    assert not t._requests._remembered


def settings(**cache: Any) -> UpstreamSettings:
    return UpstreamSettings(
        base_url="http://127.0.0.1",  # type: ignore[arg-type]
        auth=ApiKeyAuth(api_key="k"),  # type: ignore[arg-type]
        resilience=ResilienceSettings(cache=CacheSettings(**cache)),
    )


@pytest.mark.parametrize(
    ("path", "cache", "remembers"),
    [
        (GET_DEVICE, {}, True),  # cache_ttl_seconds in the protos, the cache on
        (GET_DEVICE, {"enabled": False}, False),
        (GET_DEVICE, {"max_ttl_seconds": 0}, False),  # every TTL capped to nothing
        ("/openframe.v1.DeviceService/ListDevices", {}, False),  # cached, but paged
        ("/openframe.v1.AlertService/CreateAlert", {}, False),  # not a cached read
    ],
)
def test_only_the_methods_the_cache_keeps_remember_their_binds(
    specs: dict[str, MethodSpec], codec: JsonCodec, path: str, cache: dict[str, Any], remembers: bool
) -> None:
    t = transcoder_for(specs[path], codec, settings(**cache), page_tokens=PageTokenSigner.ephemeral())
    assert isinstance(t, MethodTranscoder)
    assert (t._requests._remembered is not None) is remembers
