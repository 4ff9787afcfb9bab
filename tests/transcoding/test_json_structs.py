"""Struct fields decoded from vendor JSON: the codec fills them in place after building
the message (``JsonCodec.build``), and the result must be exactly what protobuf's own
``Struct.update`` builds through the constructor: same values, same kinds (an empty
object or list is one), same presence, same bytes; and what a Struct cannot hold is
still refused."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.json_values import MalformedPayloadError, dec_value, fill_struct

CASES: list[dict[str, Any]] = [
    {},
    {"a": {}},
    {"a": []},
    {"a": None},
    {"a": True, "b": False, "c": 0, "d": -1.5, "e": "", "f": "x"},
    {"nested": {"deeper": {"list": [1, "two", None, True, {}, [], {"k": [[]]}]}}},
    {"agent_version": "5.12.3", "ram_gb": 32, "disk_free_gb": 211.5, "encrypted": True},
]


def by_protobuf(value: dict[str, Any]) -> devices_pb2.Device:
    return devices_pb2.Device(id="d", metadata=value)


@pytest.mark.parametrize("value", CASES)
def test_a_struct_field_is_what_protobuf_builds(codec: JsonCodec, value: dict[str, Any]) -> None:
    ours = codec.decode(devices_pb2.Device, {"id": "d", "metadata": value})
    expected = by_protobuf(value)
    assert ours == expected
    assert ours.HasField("metadata")
    assert ours.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


def test_an_absent_struct_stays_absent(codec: JsonCodec) -> None:
    for document in ({"id": "d"}, {"id": "d", "metadata": None}):
        assert not codec.decode(devices_pb2.Device, document).HasField("metadata")


@pytest.mark.parametrize("value", CASES)
def test_fill_struct_is_struct_update(value: dict[str, Any]) -> None:
    ours, theirs = struct_pb2.Struct(), struct_pb2.Struct()
    fill_struct(ours, value)
    theirs.update(value)
    assert ours == theirs
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)


@pytest.mark.parametrize("value", [[], {}, [[]], {"a": []}, None, 1, "x"])
def test_a_value_of_any_json_has_the_kind_protobuf_gives_it(value: Any) -> None:
    holder = struct_pb2.Struct()
    holder.update({"v": value})
    assert dec_value(value, "v") == holder.fields["v"]
    assert dec_value(value, "v").WhichOneof("kind") == holder.fields["v"].WhichOneof("kind")


def test_what_a_struct_cannot_hold_is_refused_naming_the_message(codec: JsonCodec) -> None:
    with pytest.raises(MalformedPayloadError):
        codec.decode(devices_pb2.Device, {"metadata": {"too_big": 10**400}}, "device")


numbers = st.integers(-(2**53), 2**53) | st.floats(allow_nan=False)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, derandomize=True)  # a merge gate replays the same inputs
@given(value=st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_generated_objects_build_as_protobuf_builds_them(value: dict[str, Any]) -> None:
    codec = JsonCodec()
    ours = codec.decode(alerts_pb2.Alert, {"metadata": value})
    expected = alerts_pb2.Alert(metadata=value)
    assert ours.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
