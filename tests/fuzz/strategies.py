"""Hypothesis strategies built from proto descriptors (no hand-written shapes).

- :func:`messages` draws instances of any message type: every field type,
  repeated fields, maps, oneofs, nested messages (depth-bounded) and the
  well-known types. ``hostile=True`` adds what a caller can send but should not:
  enum numbers outside the enum, timestamps and durations out of range,
  non-finite numbers, dot segments, control characters, huge strings.
- :func:`json_values` draws any JSON document orjson can produce, including deep
  nesting; :func:`json_shaped_like` draws JSON with a message's field names and
  mostly (not always) the right value types, to reach the decoders' inner paths.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from google.protobuf import any_pb2, message_factory
from google.protobuf import descriptor as _d
from google.protobuf.message import Message
from hypothesis import strategies as st

from adapter.descriptors.wire_names import wire_name
from adapter.transcoding.request_validation import (
    DURATION_MAX_SECONDS,
    TIMESTAMP_MAX_SECONDS,
    TIMESTAMP_MIN_SECONDS,
)

__all__ = ["ADVERSARIAL_TEXT", "json_shaped_like", "json_values", "messages"]

_FD = _d.FieldDescriptor
_INT_RANGES = {
    _FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    _FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    _FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _FD.TYPE_UINT32: (0, 2**32 - 1),
    _FD.TYPE_FIXED32: (0, 2**32 - 1),
    _FD.TYPE_UINT64: (0, 2**64 - 1),
    _FD.TYPE_FIXED64: (0, 2**64 - 1),
}
#: Strings that have broken URL builders, header writers and parsers before.
ADVERSARIAL_TEXT = (
    "", ".", "..", "/", "./", "../", "..\\", "../admin", "a/../../b", "%2e%2e", "%2F", "%00", "\x00",
    "a\r\nX-Injected: 1", "\r\n\r\n", "é", "ключ", "\u2028", "\ufeff", "?a=b", "#frag", "{x}", "*", "**",
    " ", "a b", "\t", ";", "%", "\\", "//", "::", "9" * 30,
)  # fmt: skip
_MAX_DEPTH = 3
_EDGE_TIMESTAMPS = (
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z", "2024-02-30T00:00:00Z", "2024-01-01T00:00:00.123456789Z",
    "2024-01-01", "2024-01-01T00:00:00", "", "Z",
)  # fmt: skip
_EDGE_DURATIONS = (
    "1e300s",
    "-1e300s",
    "nans",
    "infs",
    "99999999999999999999s",
    "1.5s",
    "-0.000000001s",
    "s",
    1e300,
)


def _text(hostile: bool) -> st.SearchStrategy[str]:
    base = st.text(max_size=40)
    if not hostile:
        return base
    return st.one_of(
        base, st.sampled_from(ADVERSARIAL_TEXT), st.text(min_size=1, max_size=3).map(lambda s: s * 3000)
    )


@functools.cache
def json_scalars(*, big_ints: bool = False) -> st.SearchStrategy[Any]:
    ints = st.integers(-(2**63), 2**64 - 1) if not big_ints else st.integers()
    return st.one_of(
        st.none(), st.booleans(), ints, st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)
    )


def _nested(draw_depth: int, leaf: Any) -> Any:
    doc = leaf
    for level in range(draw_depth):
        doc = {"a": doc} if level % 2 else [doc]
    return doc


@functools.cache
def json_values() -> st.SearchStrategy[Any]:
    """Any JSON orjson.loads could return, sometimes nested up to 1100 levels."""
    tree = st.recursive(
        json_scalars(),
        lambda kids: st.one_of(
            st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)
        ),
        max_leaves=25,
    )
    deep = st.builds(_nested, st.integers(40, 1100), json_scalars())
    return st.one_of(tree, deep)


@functools.cache
def _struct_json(hostile: bool) -> st.SearchStrategy[dict[str, Any]]:
    floats = st.floats(allow_nan=hostile, allow_infinity=hostile)
    leaves = st.one_of(st.none(), st.booleans(), floats, st.integers(-(2**53), 2**53), st.text(max_size=10))
    values = st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=6), kids, max_size=3)
        ),
        max_leaves=12,
    )
    return st.dictionaries(st.text(max_size=8), values, max_size=4)


def _wkt(name: str, cls: type[Message], hostile: bool) -> st.SearchStrategy[Message] | None:
    if name == "google.protobuf.Timestamp":
        seconds = st.integers(TIMESTAMP_MIN_SECONDS, TIMESTAMP_MAX_SECONDS)
        nanos = st.integers(0, 999_999_999)
        if hostile:
            seconds = st.one_of(seconds, st.integers(-(2**63), 2**63 - 1))
            nanos = st.one_of(nanos, st.integers(-(2**31), 2**31 - 1))
        return st.builds(cls, seconds=seconds, nanos=nanos)
    if name == "google.protobuf.Duration":
        if hostile:
            return st.builds(
                cls, seconds=st.integers(-(2**63), 2**63 - 1), nanos=st.integers(-(2**31), 2**31 - 1)
            )
        return st.integers(-DURATION_MAX_SECONDS, DURATION_MAX_SECONDS).flatmap(
            lambda s: st.builds(
                cls, seconds=st.just(s), nanos=st.integers(0, 999_999_999).map(lambda n: -n if s < 0 else n)
            )
        )
    if name == "google.protobuf.Struct":

        def struct(doc: dict[str, Any]) -> Message:
            message = cls()
            message.update(doc)  # type: ignore[attr-defined]
            return message

        return _struct_json(hostile).map(struct)
    if name == "google.protobuf.Value":

        def value(doc: dict[str, Any]) -> Message:
            message = cls()
            if doc:
                message.struct_value.update(doc)  # type: ignore[attr-defined]
            else:
                message.null_value = 0  # type: ignore[attr-defined]
            return message

        scalar = st.one_of(
            st.builds(cls, string_value=st.text(max_size=10)),
            st.builds(cls, number_value=st.floats(allow_nan=hostile, allow_infinity=hostile)),
            st.builds(cls, bool_value=st.booleans()),
        )
        return st.one_of(scalar, _struct_json(hostile).map(value))
    if name == "google.protobuf.ListValue":

        def list_value(doc: dict[str, Any]) -> Message:
            message = cls()
            message.extend(list(doc.values()))  # type: ignore[attr-defined]
            return message

        return _struct_json(hostile).map(list_value)
    if name == "google.protobuf.FieldMask":
        path = st.from_regex(r"[a-z][a-z0-9_]{0,10}(\.[a-z][a-z0-9_]{0,10}){0,2}", fullmatch=True)
        return st.builds(cls, paths=st.lists(st.one_of(path, _text(True)) if hostile else path, max_size=3))
    if name == "google.protobuf.Any":
        return st.builds(any_pb2.Any, type_url=st.text(max_size=20), value=st.binary(max_size=20))
    if name == "google.protobuf.Empty":
        return st.just(cls())
    return None


_CACHE: dict[tuple[str, bool, int], st.SearchStrategy[Message]] = {}


def messages(
    descriptor: _d.Descriptor, *, hostile: bool = False, _depth: int = 0
) -> st.SearchStrategy[Message]:
    """Instances of ``descriptor``'s message type, with any subset of fields set."""
    key = (descriptor.full_name, hostile, _depth)
    if key in _CACHE:
        return _CACHE[key]
    cls = message_factory.GetMessageClass(descriptor)
    special = _wkt(descriptor.full_name, cls, hostile)
    if special is not None:
        _CACHE[key] = special
        return special
    setters: list[tuple[_d.FieldDescriptor, st.SearchStrategy[Any], Callable[[Message, Any], None]]] = []
    for field in descriptor.fields:
        plan = _field_plan(field, hostile, _depth)
        if plan is not None:
            setters.append((field, *plan))

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for _field, values, setter in setters:
            if draw(st.booleans()):
                setter(message, draw(values))
        return message

    strategy = build()
    _CACHE[key] = strategy
    return strategy


def _scalar(field: _d.FieldDescriptor, hostile: bool, depth: int) -> st.SearchStrategy[Any] | None:
    t = field.type
    if t in _INT_RANGES:
        low, high = _INT_RANGES[t]
        return st.integers(low, high)
    if t == _FD.TYPE_BOOL:
        return st.booleans()
    if t == _FD.TYPE_STRING:
        return _text(hostile)
    if t == _FD.TYPE_BYTES:
        return st.binary(max_size=40)
    if t == _FD.TYPE_DOUBLE:
        return st.floats(allow_nan=hostile, allow_infinity=hostile)
    if t == _FD.TYPE_FLOAT:
        return st.floats(width=32, allow_nan=hostile, allow_infinity=hostile)
    if t == _FD.TYPE_ENUM:
        assert field.enum_type is not None
        known = st.sampled_from([v.number for v in field.enum_type.values])
        return st.one_of(known, st.integers(-(2**31), 2**31 - 1)) if hostile else known
    if t == _FD.TYPE_MESSAGE:
        assert field.message_type is not None
        if depth >= _MAX_DEPTH and not field.message_type.full_name.startswith("google.protobuf."):
            return None
        return messages(field.message_type, hostile=hostile, _depth=depth + 1)
    return None


def _field_plan(
    field: _d.FieldDescriptor, hostile: bool, depth: int
) -> tuple[st.SearchStrategy[Any], Callable[[Message, Any], None]] | None:
    name = field.name
    entry = field.message_type if field.type == _FD.TYPE_MESSAGE else None
    if entry is not None and entry.GetOptions().map_entry:
        keys = _scalar(entry.fields_by_name["key"], hostile, depth)
        values = _scalar(entry.fields_by_name["value"], hostile, depth)
        if keys is None or values is None:
            return None
        is_message = entry.fields_by_name["value"].type == _FD.TYPE_MESSAGE

        def set_map(message: Message, items: dict[Any, Any]) -> None:
            target = getattr(message, name)
            for k, v in items.items():
                if is_message:
                    target[k].CopyFrom(v)
                else:
                    target[k] = v

        return st.dictionaries(keys, values, max_size=3), set_map
    single = _scalar(field, hostile, depth)
    if single is None:
        return None
    if field.is_repeated:
        return st.lists(single, max_size=3), lambda message, items: getattr(message, name).extend(items)
    if field.type == _FD.TYPE_MESSAGE:
        return single, lambda message, value: getattr(message, name).CopyFrom(value)
    return single, lambda message, value: setattr(message, name, value)


@functools.cache
def json_shaped_like(descriptor: _d.Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects keyed by ``descriptor``'s wire names; values mostly of the right kind."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        right: st.SearchStrategy[Any]
        if field.type == _FD.TYPE_MESSAGE and field.message_type is not None and depth < _MAX_DEPTH:
            if field.message_type.full_name == "google.protobuf.Timestamp":
                right = st.one_of(st.sampled_from(_EDGE_TIMESTAMPS), st.text(max_size=30))
            elif field.message_type.full_name == "google.protobuf.Duration":
                right = st.one_of(st.sampled_from(_EDGE_DURATIONS), json_scalars())
            elif field.message_type.full_name.startswith("google.protobuf."):
                right = json_values()
            else:
                right = json_shaped_like(field.message_type, depth + 1)
        elif field.type == _FD.TYPE_ENUM and field.enum_type is not None:
            right = st.one_of(
                st.sampled_from([v.name.lower() for v in field.enum_type.values]), st.text(max_size=8)
            )
        elif field.type == _FD.TYPE_STRING:
            right = st.text(max_size=20)
        else:
            right = json_scalars(big_ints=False)
        if field.is_repeated:
            right = st.lists(right, max_size=3)
        fields[wire_name(field)] = st.one_of(right, right, json_scalars())  # sometimes the wrong type
    if not fields:
        return st.just({})
    return st.fixed_dictionaries({}, optional=fields)
