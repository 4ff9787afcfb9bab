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
names the field path.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor as _d
from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from meshadapter.options.v1 import options_pb2

from adapter.descriptors.access import descriptor_of, enum_of, field_of, message_of

from .enum_names import enum_wire_names

__all__ = ["JsonCodec", "MalformedPayloadError"]

logger = logging.getLogger(__name__)

Json = Any
Decode = Callable[[Json, str], Any]
Encode = Callable[[Any], Json]

_UTC = dt.UTC
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


class MalformedPayloadError(ValueError):
    """The JSON does not fit the message type; ``path`` names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '<root>'}: {problem}")
        self.path = path
        self.problem = problem


def _type_name(value: Json) -> str:
    return "null" if value is None else type(value).__name__


def wire_name(field: _d.FieldDescriptor) -> str:
    """The field's name in vendor JSON: the proto name unless an option renames it."""
    opts = field.GetOptions()
    if opts.HasExtension(options_pb2.field):
        renamed: str = opts.Extensions[options_pb2.field].wire_name
        if renamed:
            return renamed
    return field.name


# --- scalar decoders: validate the JSON type, convert where vendors vary ---------


def _dec_str(v: Json, path: str) -> str:
    if type(v) is str:
        return v
    raise MalformedPayloadError(path, f"expected a string, got {_type_name(v)}")


def _dec_bool(v: Json, path: str) -> bool:
    if type(v) is bool:
        return v
    raise MalformedPayloadError(path, f"expected a boolean, got {_type_name(v)}")


def _dec_int(v: Json, path: str) -> int:
    if type(v) is int:
        return v
    # proto3 JSON allows 64-bit integers as strings and integral floats.
    if type(v) is str:
        try:
            return int(v)
        except ValueError:
            pass
    elif type(v) is float and v.is_integer():
        return int(v)
    raise MalformedPayloadError(path, f"expected an integer, got {_type_name(v)}")


def _dec_float(v: Json, path: str) -> float:
    if type(v) is float or type(v) is int:
        return float(v)
    if v in ("NaN", "Infinity", "-Infinity"):
        return float(v.replace("Infinity", "inf"))
    raise MalformedPayloadError(path, f"expected a number, got {_type_name(v)}")


def _dec_bytes(v: Json, path: str) -> bytes:
    if type(v) is str:
        padded = v + "=" * (-len(v) % 4)
        try:  # proto3 JSON accepts both base64 alphabets
            if "-" in v or "_" in v:
                return base64.urlsafe_b64decode(padded)
            return base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise MalformedPayloadError(path, "expected base64 bytes")


def _dec_timestamp(v: Json, path: str) -> dt.datetime:
    if type(v) is str:
        try:
            parsed = dt.datetime.fromisoformat(v)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=_UTC)
    raise MalformedPayloadError(path, f"expected an RFC 3339 timestamp, got {v!r:.40}")


def _dec_duration(v: Json, path: str) -> dt.timedelta:
    if type(v) is str and v.endswith("s"):
        try:
            return dt.timedelta(seconds=float(v[:-1]))
        except ValueError:
            pass
    if type(v) is int or type(v) is float:
        return dt.timedelta(seconds=v)
    raise MalformedPayloadError(path, f"expected a duration like '1.5s', got {v!r:.40}")


def _dec_struct(v: Json, path: str) -> dict[str, Json]:
    if type(v) is dict:
        return v
    raise MalformedPayloadError(path, f"expected an object, got {_type_name(v)}")


def _dec_value(v: Json, path: str) -> struct_pb2.Value:
    value = struct_pb2.Value()
    _fill_value(value, v)
    return value


def _dec_list_value(v: Json, path: str) -> struct_pb2.ListValue:
    if type(v) is not list:
        raise MalformedPayloadError(path, f"expected an array, got {_type_name(v)}")
    out = struct_pb2.ListValue()
    out.extend(v)
    return out


def _dec_field_mask(v: Json, path: str) -> field_mask_pb2.FieldMask:
    if type(v) is str:
        return field_mask_pb2.FieldMask(paths=[p for p in v.split(",") if p])
    raise MalformedPayloadError(path, "expected a comma-separated field mask")


def _dec_empty(v: Json, path: str) -> dict[str, Json]:
    _dec_struct(v, path)
    return {}


def _fill_value(target: struct_pb2.Value, v: Json) -> None:
    if v is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif type(v) is bool:
        target.bool_value = v
    elif type(v) is int or type(v) is float:
        target.number_value = v
    elif type(v) is str:
        target.string_value = v
    elif type(v) is dict:
        target.struct_value.update(v)
    else:
        target.list_value.extend(v)


# --- encoders ------------------------------------------------------------------


def format_timestamp(ts: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 in UTC with ``Z``, with fractional seconds only when present."""
    moment = dt.datetime.fromtimestamp(ts.seconds, _UTC).replace(tzinfo=None)
    text = moment.isoformat()
    if ts.nanos:
        text += f".{ts.nanos:09d}".rstrip("0")
    return text + "Z"


def _enc_duration(d: duration_pb2.Duration) -> str:
    return f"{d.seconds + d.nanos / 1e9:g}s"


def value_to_python(v: struct_pb2.Value) -> Json:
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_python(v.struct_value)
    if kind == "list_value":
        return [value_to_python(x) for x in v.list_value.values]
    if kind == "number_value":
        n = v.number_value
        return int(n) if n.is_integer() and math.isfinite(n) else n
    if kind is None or kind == "null_value":
        return None
    return getattr(v, kind)


def struct_to_python(s: struct_pb2.Struct) -> dict[str, Json]:
    return {k: value_to_python(x) for k, x in s.fields.items()}


def _enc_bytes(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _identity(v: Any) -> Any:
    return v


class _MessageCodec:
    """Field tables of one message type (filled lazily to allow recursive types)."""

    __slots__ = ("by_name", "by_wire", "cls_name", "descriptor", "unknown_seen")

    def __init__(self, descriptor: _d.Descriptor) -> None:
        self.descriptor = descriptor
        self.cls_name = descriptor.full_name
        self.by_wire: dict[str, tuple[str, Decode]] = {}
        self.by_name: dict[str, tuple[str, Encode]] = {}
        self.unknown_seen: set[str] = set()


class JsonCodec:
    """Encodes messages to vendor JSON values and decodes vendor JSON into messages.

    Example::

        codec = JsonCodec()
        alert = codec.decode(alerts_pb2.Alert, orjson.loads(body))
        body = orjson.dumps(codec.encode(alert))
    """

    def __init__(self) -> None:
        self._codecs: dict[str, _MessageCodec] = {}

    # public API ---------------------------------------------------------------

    def decode(self, cls: type[Message], data: Json, path: str = "") -> Message:
        """Builds a ``cls`` from parsed JSON; raises MalformedPayloadError."""
        kwargs = self.decode_kwargs(descriptor_of(cls), data, path)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:  # e.g. an int32 out of range
            raise MalformedPayloadError(path, str(exc)) from exc

    def decode_kwargs(self, descriptor: _d.Descriptor, data: Json, path: str = "") -> dict[str, Any]:
        """Constructor keyword arguments for ``descriptor`` from a JSON object."""
        if type(data) is not dict:
            raise MalformedPayloadError(path, f"expected an object, got {_type_name(data)}")
        codec = self._codec(descriptor)
        table = codec.by_wire
        out: dict[str, Any] = {}
        for key, value in data.items():
            entry = table.get(key)
            if entry is None:
                self._note_unknown(codec, key)
                continue
            if value is None:  # JSON null = field not set
                continue
            name, dec = entry
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
            codec = _MessageCodec(descriptor)
            self._codecs[descriptor.full_name] = codec  # before recursing: cycles
            for field in descriptor.fields:
                wire = wire_name(field)
                codec.by_wire[wire] = (field.name, self._field_decoder(field))
                codec.by_name[field.name] = (wire, self._field_encoder(field))
        return codec

    def _note_unknown(self, codec: _MessageCodec, key: str) -> None:
        if key not in codec.unknown_seen:
            codec.unknown_seen.add(key)
            logger.info("ignoring upstream field %r unknown to %s", key, codec.cls_name)

    def _field_decoder(self, field: _d.FieldDescriptor) -> Decode:
        if _is_map(field):
            entry = message_of(field)
            value_field = field_of(entry, "value")
            key_dec = self._single_decoder(field_of(entry, "key"))
            val_dec = self._single_decoder(value_field)

            def dec_map(v: Json, path: str) -> dict[Any, Any]:
                if type(v) is not dict:
                    raise MalformedPayloadError(path, f"expected an object, got {_type_name(v)}")
                return {
                    _map_key(key_dec, k, path): val_dec(x, f"{path}.{k}")
                    for k, x in v.items()
                    if x is not None
                }

            return dec_map
        single = self._single_decoder(field)
        if _is_repeated(field):

            def dec_list(v: Json, path: str) -> list[Any]:
                if type(v) is not list:
                    raise MalformedPayloadError(path, f"expected an array, got {_type_name(v)}")
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
            return _dec_str
        if t == _FD.TYPE_BOOL:
            return _dec_bool
        if t in _INT_TYPES:
            return _dec_int
        if t in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
            return _dec_float
        if t == _FD.TYPE_BYTES:
            return _dec_bytes
        raise TypeError(f"unsupported field type {t} of {field.full_name}")

    def _message_decoder(self, descriptor: _d.Descriptor) -> Decode:
        special = _WKT_DECODERS.get(descriptor.full_name)
        if special is not None:
            return special
        if descriptor.full_name in _WRAPPERS:
            inner = self._single_decoder(field_of(descriptor, "value"))
            return lambda v, path: {"value": inner(v, path)}
        return lambda v, path: self.decode_kwargs(descriptor, v, path)

    def _field_encoder(self, field: _d.FieldDescriptor) -> Encode:
        if _is_map(field):
            val_enc = self._single_encoder(field_of(message_of(field), "value"))
            return lambda m: {str(k): val_enc(x) for k, x in m.items()}
        single = self._single_encoder(field)
        if _is_repeated(field):
            return lambda xs: [single(x) for x in xs]
        return single

    def _single_encoder(self, field: _d.FieldDescriptor) -> Encode:
        t = field.type
        if t == _FD.TYPE_MESSAGE:
            name = message_of(field).full_name
            special = _WKT_ENCODERS.get(name)
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
            return _enc_bytes
        return _identity


def _is_repeated(field: _d.FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _is_map(field: _d.FieldDescriptor) -> bool:
    return _is_repeated(field) and field.type == _FD.TYPE_MESSAGE and message_of(field).GetOptions().map_entry


def _map_key(dec: Decode, key: str, path: str) -> Any:
    # JSON object keys are strings; integer and bool map keys arrive spelled out.
    if dec is _dec_int:
        return _dec_int(key, path)
    if dec is _dec_bool:
        if key in ("true", "false"):
            return key == "true"
        raise MalformedPayloadError(path, f"bad boolean map key {key!r}")
    return key


def _enum_decoder(enum: _d.EnumDescriptor) -> Decode:
    by_wire = {wire: number for number, wire in enum_wire_names(enum).items()}
    by_wire.update({v.name: v.number for v in enum.values})  # full names accepted too
    full_name = enum.full_name
    unknown_seen: set[str] = set()

    def dec_enum(v: Json, path: str) -> int:
        if type(v) is str:
            number = by_wire.get(v)
            if number is None:
                number = by_wire.get(v.lower())
            if number is not None:
                return number
            # Vendors add enum values; keep the message, mark the value unknown.
            if v not in unknown_seen:
                unknown_seen.add(v)
                logger.info("unknown %s value %r at %s: mapped to 0", full_name, v, path)
            return 0
        if type(v) is int:
            return v
        raise MalformedPayloadError(path, f"expected an enum name, got {_type_name(v)}")

    return dec_enum


_WKT_DECODERS: dict[str, Decode] = {
    "google.protobuf.Timestamp": _dec_timestamp,
    "google.protobuf.Duration": _dec_duration,
    "google.protobuf.Struct": _dec_struct,
    "google.protobuf.Value": _dec_value,
    "google.protobuf.ListValue": _dec_list_value,
    "google.protobuf.FieldMask": _dec_field_mask,
    "google.protobuf.Empty": _dec_empty,
}

_WKT_ENCODERS: dict[str, Encode] = {
    "google.protobuf.Timestamp": format_timestamp,
    "google.protobuf.Duration": _enc_duration,
    "google.protobuf.Struct": struct_to_python,
    "google.protobuf.Value": value_to_python,
    "google.protobuf.ListValue": lambda lv: [value_to_python(x) for x in lv.values],
    "google.protobuf.FieldMask": lambda fm: ",".join(fm.paths),
    "google.protobuf.Empty": lambda _m: {},
}
