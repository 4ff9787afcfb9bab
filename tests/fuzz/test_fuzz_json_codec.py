"""Fuzz target: the JSON <-> proto codec (adapter/transcoding/json_codec.py).

Invariants, for every message type in the protos:
- decoding any JSON value raises nothing but MalformedPayloadError;
- a valid message encodes to JSON orjson can write, and decodes back equal.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from google.protobuf import descriptor as _d
from google.protobuf import message_factory
from hypothesis import given
from hypothesis import strategies as st

from adapter.descriptors.loader import import_generated_modules
from adapter.transcoding.json_codec import JsonCodec, MalformedPayloadError

from .counting import tried
from .profiles import budget
from .strategies import json_shaped_like, json_values, messages

CODEC = JsonCodec()


def _all_messages() -> list[_d.Descriptor]:
    found: dict[str, _d.Descriptor] = {}

    def walk(desc: _d.Descriptor) -> None:
        if desc.full_name in found or desc.GetOptions().map_entry:
            return
        found[desc.full_name] = desc
        for nested in desc.nested_types:
            walk(nested)

    for file in import_generated_modules():
        if file.package.startswith("meshadapter.options"):
            continue
        for desc in file.message_types_by_name.values():
            walk(desc)
    return [found[name] for name in sorted(found)]


MESSAGE_TYPES = _all_messages()


_DOCUMENTS = {d.full_name: st.one_of(json_shaped_like(d), json_values()) for d in MESSAGE_TYPES}


@st.composite
def _type_and_json(draw: st.DrawFn) -> tuple[_d.Descriptor, Any]:
    desc = draw(st.sampled_from(MESSAGE_TYPES))
    return desc, draw(_DOCUMENTS[desc.full_name])


@budget(600)
@given(_type_and_json())
def test_decode_raises_only_malformed_payload(case: tuple[_d.Descriptor, Any]) -> None:
    tried("json_codec.decode")
    desc, document = case
    with contextlib.suppress(MalformedPayloadError):
        CODEC.decode(message_factory.GetMessageClass(desc), document)


@st.composite
def _valid_message(draw: st.DrawFn) -> Any:
    return draw(messages(draw(st.sampled_from(MESSAGE_TYPES))))


@budget(400)
@given(_valid_message())
def test_encode_then_decode_round_trips(message: Any) -> None:
    tried("json_codec.round_trip")
    text = orjson.dumps(CODEC.encode(message))
    back = CODEC.decode(type(message), orjson.loads(text))
    assert back == message, (message, text)
