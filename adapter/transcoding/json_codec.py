"""Converters between protobuf messages and the vendors' JSON, built once per type.

``google.protobuf.json_format`` walks descriptors in pure Python on every call
(~100 µs for a 1 KB message). Here each message type gets a table of small
per-field converter functions at start-up; decoding turns parsed JSON (orjson)
into a tree of constructor keyword arguments and builds the message with one
call into the upb C extension, which accepts nested dicts, ``datetime`` for
``Timestamp`` and plain dicts for ``Struct``. See bench/codec.py for figures.

Vendor conventions (docs/upstream-contract.md): proto field names (snake_case),
enums as lower-case names without the type prefix, RFC 3339 timestamps. Fields
the upstream sends that the proto does not know are ignored (logged once per
type and field), never an error; values of the wrong JSON type are an error that
names the field path. So is JSON nested deeper than ``max_depth`` inside a
``Struct``/``Value``/``ListValue`` field (checked before any message is built:
building one recurses per level) and any value a message cannot hold: decoding
raises MalformedPayloadError and nothing else (tests/fuzz/test_fuzz_json_codec.py).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from google.protobuf import descriptor as _d
from google.protobuf.message import DecodeError, Message

from adapter.descriptors.access import descriptor_of, enum_of, field_of, message_of
from adapter.descriptors.wire_names import enum_wire_names, wire_name

from .json_limits import check_json_depth
from .json_values import (
    WKT_DECODERS,
    WKT_ENCODERS,
    Decode,
    Encode,
    Json,
    MalformedPayloadError,
    dec_bool,
    dec_bytes,
    dec_float,
    dec_int,
    dec_str,
    enc_bytes,
    fill_struct,
    format_timestamp,
    identity,
    struct_to_python,
    type_name,
    value_to_python,
)

__all__ = [
    "Decode",
    "JsonCodec",
    "MalformedPayloadError",
    "format_timestamp",
    "struct_to_python",
    "value_to_python",
]

logger = logging.getLogger(__name__)

#: protobuf parsers stop at 100 nested messages and each JSON level inside a
#: Struct costs three (Struct, map entry, Value): a message with Struct JSON
#: deeper than ~33 levels can be built here but no gRPC client could parse it.
DEFAULT_MAX_DEPTH = 32
_STR_ONLY = frozenset({str})  # the item types of a repeated string field decoded as they are
_FD = _d.FieldDescriptor
_INT_TYPES = frozenset(
    {
        _FD.TYPE_INT32,
        _FD.TYPE_INT64,
        _FD.TYPE_UINT32,
        _FD.TYPE_UINT64,
        _FD.TYPE_SINT32,
        _FD.TYPE_SINT64,
        _FD.TYPE_FIXED32,
        _FD.TYPE_FIXED64,
        _FD.TYPE_SFIXED32,
        _FD.TYPE_SFIXED64,
    }
)
_WRAPPERS = frozenset(
    f"google.protobuf.{n}Value"
    for n in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)


#: Unknown field names or enum values logged per message or enum type, at most.
UNKNOWN_LOGGED = 64


class _LoggedOnce:
    """The unknown names already logged, up to :data:`UNKNOWN_LOGGED`: an upstream that
    sends a new one in every answer (a key per device, random enum spellings) can
    neither grow this without bound nor fill the log."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def first(self, name: str) -> str | None:
        """None if ``name`` is not to be logged; else "" or, for the last one logged,
        a note saying that further ones are not."""
        if name in self._seen or len(self._seen) >= UNKNOWN_LOGGED:
            return None
        self._seen.add(name)
        return (
            ""
            if len(self._seen) < UNKNOWN_LOGGED
            else f" (the {UNKNOWN_LOGGED}th: further ones are not logged)"
        )


class _MessageCodec:
    """Field tables of one message type (filled lazily to allow recursive types)."""

    __slots__ = ("by_name", "by_wire", "cls_name", "descriptor", "null_is_value", "structs", "unknown_seen")

    def __init__(self, descriptor: _d.Descriptor) -> None:
        self.descriptor = descriptor
        self.cls_name = descriptor.full_name
        self.by_wire: dict[str, tuple[str, Decode]] = {}
        self.by_name: dict[str, tuple[str, Encode]] = {}
        self.unknown_seen = _LoggedOnce()
        #: Wire names of singular google.protobuf.Value fields: for them JSON null
        #: is a value (NullValue), not "unset" (proto3 JSON mapping).
        self.null_is_value: set[str] = set()
        #: Names of singular google.protobuf.Struct fields: filled after the message is
        #: built (:meth:`JsonCodec.build`), not passed to its constructor.
        self.structs: list[str] = []


class JsonCodec:
    """Encodes messages to vendor JSON values and decodes vendor JSON into messages.

    Example::

        codec = JsonCodec()
        alert = codec.decode(alerts_pb2.Alert, orjson.loads(body))
        body = orjson.dumps(codec.encode(alert))
    """

    def __init__(self, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        """``max_depth``: deepest JSON nesting accepted inside a Struct, Value or ListValue."""
        self.max_depth = max_depth
        #: Complete codecs only: read without a lock (large payloads are transcoded on a
        #: worker thread, adapter/server/large_payloads.py, while the loop transcodes others).
        self._codecs: dict[str, _MessageCodec] = {}
        #: Codecs being built, visible to the building thread alone (it holds the lock).
        self._building: dict[str, _MessageCodec] = {}
        self._build_lock = threading.RLock()
        #: Each message class's Struct fields (:meth:`build`), looked up by class.
        self._structs: dict[type[Message], tuple[str, ...]] = {}

    # public API ---------------------------------------------------------------

    def decode(self, cls: type[Message], data: Json, path: str = "") -> Message:
        """Builds a ``cls`` from parsed JSON; raises MalformedPayloadError."""
        kwargs = self.decode_kwargs(descriptor_of(cls), data, path)
        try:
            return self.build(cls, kwargs)
        except (TypeError, ValueError, OverflowError, DecodeError) as exc:  # e.g. an int32 out of range
            raise MalformedPayloadError(path, str(exc)) from exc

    def build(self, cls: type[Message], kwargs: dict[str, Any]) -> Message:
        """``cls(**kwargs)`` for kwargs :meth:`decode_kwargs` made (it may take them
        apart): its Struct fields filled in place after the constructor, which would
        fill them through protobuf's ``Struct.update`` at twice the cost. Raises what
        the constructor raises."""
        structs = self._structs.get(cls)
        if structs is None:
            structs = self._structs[cls] = tuple(self._codec(descriptor_of(cls)).structs)
        if not structs:
            return cls(**kwargs)
        later = []
        for name in structs:
            value = kwargs.pop(name, None)
            if value is not None:
                later.append((name, value))
        message = cls(**kwargs)
        for name, value in later:
            fill_struct(getattr(message, name), value)
        return message

    def decode_kwargs(self, descriptor: _d.Descriptor, data: Json, path: str = "") -> dict[str, Any]:
        """Constructor keyword arguments for ``descriptor`` from a JSON object."""
        if type(data) is not dict:
            raise MalformedPayloadError(path, f"expected an object, got {type_name(data)}")
        codec = self._codec(descriptor)
        table = codec.by_wire
        out: dict[str, Any] = {}
        for key, value in data.items():
            entry = table.get(key)
            if entry is None:
                self._note_unknown(codec, key)
                continue
            name, dec = entry
            if dec is dec_str and type(value) is str:  # the commonest field, without a call
                out[name] = value
                continue
            if value is None:  # JSON null = field not set, except for a Value
                if key in codec.null_is_value:
                    out[name] = dec(None, key)
                continue
            out[name] = dec(value, f"{path}.{key}" if path else key)
        return out

    def field_decoder(self, field: _d.FieldDescriptor) -> Decode:
        """Decoder of one field's JSON value (repeated/map aware)."""
        return self._field_decoder(field)

    def encode(self, message: Message) -> dict[str, Json]:
        """JSON object of the fields set in ``message`` (proto3 defaults omitted)."""
        table = self._codec(descriptor_of(message)).by_name
        return {table[f.name][0]: table[f.name][1](v) for f, v in message.ListFields()}

    def field_encoder(self, field: _d.FieldDescriptor) -> Encode:
        """Encoder of one field's value (repeated/map aware)."""
        return self._field_encoder(field)

    # construction -------------------------------------------------------------

    def _codec(self, descriptor: _d.Descriptor) -> _MessageCodec:
        codec = self._codecs.get(descriptor.full_name)
        if codec is None:
            codec = self._build(descriptor)
        return codec

    def _build(self, descriptor: _d.Descriptor) -> _MessageCodec:
        name = descriptor.full_name
        with self._build_lock:  # reentrant: building a field's coder may need this codec (cycles)
            codec = self._codecs.get(name) or self._building.get(name)
            if codec is not None:
                return codec
            codec = self._building[name] = _MessageCodec(descriptor)  # before recursing: cycles
            try:
                for field in descriptor.fields:
                    wire = wire_name(field)
                    codec.by_wire[wire] = (field.name, self._field_decoder(field))
                    codec.by_name[field.name] = (wire, self._field_encoder(field))
                    if _is_value_type(field) and not _is_repeated(field):
                        codec.null_is_value.add(wire)
                    if _is_struct_type(field) and not _is_repeated(field):
                        codec.structs.append(field.name)
            finally:
                del self._building[name]
            self._codecs[name] = codec  # published complete
            return codec

    def _note_unknown(self, codec: _MessageCodec, key: str) -> None:
        note = codec.unknown_seen.first(key)
        if note is not None:
            logger.info("ignoring upstream field %.80r unknown to %s%s", key, codec.cls_name, note)

    def _field_decoder(self, field: _d.FieldDescriptor) -> Decode:
        if _is_map(field):
            entry = message_of(field)
            value_field = field_of(entry, "value")
            key_dec = self._single_decoder(field_of(entry, "key"))
            val_dec = self._single_decoder(value_field)
            keep_null = _is_value_type(value_field)

            def dec_map(v: Json, path: str) -> dict[Any, Any]:
                if type(v) is not dict:
                    raise MalformedPayloadError(path, f"expected an object, got {type_name(v)}")
                return {
                    _map_key(key_dec, k, path): val_dec(x, f"{path}.{k}")
                    for k, x in v.items()
                    if x is not None or keep_null
                }

            return dec_map
        single = self._single_decoder(field)
        if _is_repeated(field):
            strings = single is dec_str

            def dec_list(v: Json, path: str) -> list[Any]:
                if type(v) is not list:
                    raise MalformedPayloadError(path, f"expected an array, got {type_name(v)}")
                if strings and set(map(type, v)) <= _STR_ONLY:  # checked in C, not a call an item
                    return v
                return [single(x, f"{path}[{i}]") for i, x in enumerate(v)]

            return dec_list
        return single

    def _single_decoder(self, field: _d.FieldDescriptor) -> Decode:
        t = field.type
        if t == _FD.TYPE_MESSAGE:
            return self._message_decoder(message_of(field))
        if t == _FD.TYPE_ENUM:
            return _enum_decoder(enum_of(field))
        if t == _FD.TYPE_STRING:
            return dec_str
        if t == _FD.TYPE_BOOL:
            return dec_bool
        if t in _INT_TYPES:
            return dec_int
        if t in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
            return dec_float
        if t == _FD.TYPE_BYTES:
            return dec_bytes
        raise TypeError(f"unsupported field type {t} of {field.full_name}")

    def _message_decoder(self, descriptor: _d.Descriptor) -> Decode:
        special = WKT_DECODERS.get(descriptor.full_name)
        if special is not None and descriptor.full_name in _FREE_FORM:
            return self._depth_checked(special)
        if special is not None:
            return special
        if descriptor.full_name in _WRAPPERS:
            inner = self._single_decoder(field_of(descriptor, "value"))
            return lambda v, path: {"value": inner(v, path)}
        return lambda v, path: self.decode_kwargs(descriptor, v, path)

    def _depth_checked(self, decode: Decode) -> Decode:
        limit = self.max_depth

        def checked(v: Json, path: str) -> Any:
            check_json_depth(v, limit, path)
            try:
                return decode(v, path)
            except (TypeError, ValueError, DecodeError) as exc:  # what a Struct cannot hold
                raise MalformedPayloadError(path, str(exc)) from exc

        return checked

    def _field_encoder(self, field: _d.FieldDescriptor) -> Encode:
        if _is_map(field):
            entry = message_of(field)
            val_enc = self._single_encoder(field_of(entry, "value"))
            if field_of(entry, "key").type == _FD.TYPE_BOOL:  # JSON spells them true/false
                return lambda m: {("true" if k else "false"): val_enc(x) for k, x in m.items()}
            return lambda m: {str(k): val_enc(x) for k, x in m.items()}
        single = self._single_encoder(field)
        if _is_repeated(field):
            return lambda xs: [single(x) for x in xs]
        return single

    def _single_encoder(self, field: _d.FieldDescriptor) -> Encode:
        t = field.type
        if t == _FD.TYPE_MESSAGE:
            name = message_of(field).full_name
            special = WKT_ENCODERS.get(name)
            if special is not None:
                return special
            if name in _WRAPPERS:
                inner_enc = self._single_encoder(field_of(message_of(field), "value"))
                return lambda m: inner_enc(m.value)
            return self.encode
        if t == _FD.TYPE_ENUM:
            names = enum_wire_names(enum_of(field))
            return lambda n: names.get(n, n)
        if t == _FD.TYPE_BYTES:
            return enc_bytes
        return identity


_FREE_FORM = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})


def _is_struct_type(field: _d.FieldDescriptor) -> bool:
    return field.type == _FD.TYPE_MESSAGE and message_of(field).full_name == "google.protobuf.Struct"


def _is_value_type(field: _d.FieldDescriptor) -> bool:
    return field.type == _FD.TYPE_MESSAGE and message_of(field).full_name == "google.protobuf.Value"


def _is_repeated(field: _d.FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _is_map(field: _d.FieldDescriptor) -> bool:
    return _is_repeated(field) and field.type == _FD.TYPE_MESSAGE and message_of(field).GetOptions().map_entry


def _map_key(dec: Decode, key: str, path: str) -> Any:
    # JSON object keys are strings; integer and bool map keys arrive spelled out.
    if dec is dec_int:
        return dec_int(key, path)
    if dec is dec_bool:
        if key in ("true", "false"):
            return key == "true"
        raise MalformedPayloadError(path, f"bad boolean map key {key!r}")
    return key


def _enum_decoder(enum: _d.EnumDescriptor) -> Decode:
    by_wire = {wire: number for number, wire in enum_wire_names(enum).items()}
    by_wire.update({v.name: v.number for v in enum.values})  # full names accepted too
    full_name = enum.full_name
    unknown_seen = _LoggedOnce()

    def dec_enum(v: Json, path: str) -> int:
        if type(v) is str:
            number = by_wire.get(v)
            if number is None:
                number = by_wire.get(v.lower())
            if number is not None:
                return number
            # Vendors add enum values; keep the message, mark the value unknown.
            note = unknown_seen.first(v)
            if note is not None:
                logger.info("unknown %s value %.80r at %s: mapped to 0%s", full_name, v, path, note)
            return 0
        if type(v) is int:
            return v
        raise MalformedPayloadError(path, f"expected an enum name, got {type_name(v)}")

    return dec_enum
