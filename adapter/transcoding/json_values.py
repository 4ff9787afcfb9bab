"""Converters of single JSON values: scalars with the type checks vendors need,
and the well-known types (Timestamp, Duration, Struct, Value, FieldMask...).

:mod:`adapter.transcoding.json_codec` assembles them into per-message tables.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any

from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2, timestamp_pb2

__all__ = [
    "WKT_DECODERS",
    "WKT_ENCODERS",
    "Decode",
    "Encode",
    "Json",
    "MalformedPayloadError",
    "dec_bool",
    "dec_bytes",
    "dec_float",
    "dec_int",
    "dec_str",
    "enc_bytes",
    "fill_struct",
    "format_timestamp",
    "identity",
    "struct_to_python",
    "type_name",
    "value_to_python",
]

Json = Any
Decode = Callable[[Json, str], Any]
Encode = Callable[[Any], Json]

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
# google/protobuf/timestamp.proto and duration.proto
_TIMESTAMP_MIN = -62_135_596_800  # 0001-01-01T00:00:00Z
_TIMESTAMP_MAX = 253_402_300_799  # 9999-12-31T23:59:59Z
_DURATION_MAX = 315_576_000_000
# datetime keeps microseconds only: the fraction is read apart, to the nanosecond
# (after a comma too, which ISO 8601 allows and datetime reads, dropping it here).
_FRACTION = re.compile(r"(?<=:\d\d)[.,](\d+)")
#: A JSON number, as proto3 JSON also accepts it inside a string ("1.5", "1e2").
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?\Z", re.ASCII)
_DURATION = re.compile(r"(-)?(\d{1,12})(?:\.(\d{1,9}))?s\Z", re.ASCII)
#: Integral floats within this are sent as JSON integers (exact in a double, and
#: within every JSON parser's integer range).
_EXACT_INT = 2**53


class MalformedPayloadError(ValueError):
    """The JSON does not fit the message type; ``path`` names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '<root>'}: {problem}")
        self.path = path
        self.problem = problem


def type_name(value: Json) -> str:
    return "null" if value is None else type(value).__name__


# --- scalar decoders: validate the JSON type, convert where vendors vary ---------


def dec_str(v: Json, path: str) -> str:
    if type(v) is str:
        return v
    raise MalformedPayloadError(path, f"expected a string, got {type_name(v)}")


def dec_bool(v: Json, path: str) -> bool:
    if type(v) is bool:
        return v
    raise MalformedPayloadError(path, f"expected a boolean, got {type_name(v)}")


def dec_int(v: Json, path: str) -> int:
    if type(v) is int:
        return v
    # proto3 JSON allows integers as strings, integral floats, and exponents ("1e2").
    if type(v) is str:
        try:
            return int(v)
        except ValueError:
            if _NUMBER.match(v):
                v = float(v)
    if type(v) is float and v.is_integer():
        return int(v)
    raise MalformedPayloadError(path, f"expected an integer, got {type_name(v)}")


def dec_float(v: Json, path: str) -> float:
    if type(v) is float or type(v) is int:
        return float(v)
    if type(v) is str:  # proto3 JSON: a number may come as a string ("1.5"), and these three
        if v in ("NaN", "Infinity", "-Infinity"):
            return float(v.replace("Infinity", "inf"))
        if _NUMBER.match(v):
            return float(v)
    raise MalformedPayloadError(path, f"expected a number, got {type_name(v)}")


def dec_bytes(v: Json, path: str) -> bytes:
    if type(v) is str:
        padded = v + "=" * (-len(v) % 4)
        try:  # proto3 JSON accepts both base64 alphabets
            if "-" in v or "_" in v:
                return base64.urlsafe_b64decode(padded)
            return base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise MalformedPayloadError(path, "expected base64 bytes")


def timestamp_parts(v: Json, path: str) -> tuple[int, int]:
    """``(seconds, nanos)`` since the epoch of an RFC 3339 timestamp (or ISO 8601
    without an offset: UTC), to the nanosecond, within Timestamp's range (years 1
    to 9999 in UTC); MalformedPayloadError otherwise."""
    # The shapes APIs write most (UTC to the second, millisecond or microsecond, as
    # JavaScript's toISOString): datetime reads them exactly as the general path below
    # does, at a third of its cost (a call may decode several).
    if (
        type(v) is str
        and (len(v) == 24 or len(v) == 20 or len(v) == 27)
        and v[-1] == "Z"
        and v[10] == "T"
        and v[4] == "-"
        and (len(v) == 20 or v[19] == ".")
    ):
        try:
            parsed = dt.datetime.fromisoformat(v)
        except ValueError:
            parsed = None
        if parsed is not None:
            delta = parsed - _EPOCH
            return delta.days * 86_400 + delta.seconds, parsed.microsecond * 1000
    return _timestamp_parts(v, path)


def _timestamp_parts(v: Json, path: str) -> tuple[int, int]:
    """:func:`timestamp_parts` of any form it takes (the general path)."""
    if type(v) is str and len(v) <= 64:
        v = v.upper()  # RFC 3339 allows a lower-case "t" and "z"; datetime does not
        nanos = 0
        fraction = _FRACTION.search(v)
        if fraction is not None:
            digits = fraction.group(1)
            nanos = int(digits[:9].ljust(9, "0"))
            v = v[: fraction.start()] + v[fraction.end() :]
        try:
            parsed = dt.datetime.fromisoformat(v)
        except ValueError:
            parsed = None
        if parsed is not None:
            delta = (parsed if parsed.tzinfo else parsed.replace(tzinfo=_UTC)) - _EPOCH
            seconds = delta.days * 86_400 + delta.seconds
            if not _TIMESTAMP_MIN <= seconds <= _TIMESTAMP_MAX:
                raise MalformedPayloadError(path, f"timestamp outside years 0001-9999 (UTC): {v!r:.40}")
            return seconds, nanos
    raise MalformedPayloadError(path, f"expected an RFC 3339 timestamp, got {v!r:.40}")


def dec_timestamp(v: Json, path: str) -> dt.datetime:
    """The timestamp as an aware UTC datetime (microseconds: datetime keeps no more)."""
    seconds, nanos = timestamp_parts(v, path)
    return _EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)


def dec_timestamp_fields(v: Json, path: str) -> dict[str, int]:
    """The timestamp as a ``Timestamp`` field's constructor arguments, exact to the
    nanosecond (what the codec uses): a dict is built into the field in place, where a
    ``Timestamp`` would be built and then copied (1.2 against 2.2 µs for three)."""
    seconds, nanos = timestamp_parts(v, path)
    return {"seconds": seconds, "nanos": nanos}


def dec_duration(v: Json, path: str) -> duration_pb2.Duration:
    """``"1.5s"`` (proto3 JSON) or a number of seconds, within +-10000 years."""
    if type(v) is str:
        match = _DURATION.match(v)
        if match is not None:
            sign = -1 if match.group(1) else 1
            seconds = int(match.group(2))
            nanos = int((match.group(3) or "").ljust(9, "0"))
            if seconds <= _DURATION_MAX:
                return duration_pb2.Duration(seconds=sign * seconds, nanos=sign * nanos)
    elif (type(v) is int or type(v) is float) and math.isfinite(v) and abs(v) <= _DURATION_MAX:
        seconds = int(v)
        return duration_pb2.Duration(seconds=seconds, nanos=round((v - seconds) * 1e9))
    raise MalformedPayloadError(path, f"expected a duration like '1.5s' within 10000 years, got {v!r:.40}")


def dec_struct(v: Json, path: str) -> dict[str, Json]:
    if type(v) is dict:
        return v
    raise MalformedPayloadError(path, f"expected an object, got {type_name(v)}")


def dec_value(v: Json, path: str) -> struct_pb2.Value:
    value = struct_pb2.Value()
    fill_value(value, v)
    return value


def dec_list_value(v: Json, path: str) -> struct_pb2.ListValue:
    if type(v) is not list:
        raise MalformedPayloadError(path, f"expected an array, got {type_name(v)}")
    out = struct_pb2.ListValue()
    out.extend(v)
    return out


def dec_field_mask(v: Json, path: str) -> field_mask_pb2.FieldMask:
    if type(v) is str:
        return field_mask_pb2.FieldMask(paths=[p for p in v.split(",") if p])
    raise MalformedPayloadError(path, "expected a comma-separated field mask")


def dec_empty(v: Json, path: str) -> dict[str, Json]:
    dec_struct(v, path)
    return {}


def fill_value(target: struct_pb2.Value, v: Json) -> None:
    if v is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif type(v) is bool:
        target.bool_value = v
    elif type(v) is int or type(v) is float:
        target.number_value = v
    elif type(v) is str:
        target.string_value = v
    elif type(v) is dict:
        fill_struct(target.struct_value, v)
    else:
        target.list_value.SetInParent()  # an empty list is a list (as protobuf's update sets it)
        target.list_value.extend(v)


def fill_struct(target: struct_pb2.Struct, v: dict[str, Json]) -> None:
    """``target.update(v)`` for parsed JSON, in place: protobuf's own ``update`` tests
    each value with a chain of ``isinstance`` calls, ~5 µs for a 10-key object against
    ~2.5 here. The same values and the same errors (an out-of-range number, a key
    that is not a string); present even when ``v`` is empty. Depth is bounded
    before (json_limits)."""
    target.SetInParent()
    fields = target.fields
    for key, value in v.items():
        kind = type(value)
        if kind is str:
            fields[key].string_value = value
        elif kind is bool:
            fields[key].bool_value = value
        elif kind is int or kind is float:
            fields[key].number_value = value
        else:
            fill_value(fields[key], value)


# --- encoders ------------------------------------------------------------------


def format_timestamp(ts: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 in UTC with ``Z``, with fractional seconds only when present."""
    moment = dt.datetime.fromtimestamp(ts.seconds, _UTC).replace(tzinfo=None)
    text = moment.isoformat()
    if ts.nanos:
        text += f".{ts.nanos:09d}".rstrip("0")
    return text + "Z"


def enc_duration(d: duration_pb2.Duration) -> str:
    """proto3 JSON: ``"-1.5s"``, fractional digits only when present (exact)."""
    negative = d.seconds < 0 or d.nanos < 0
    text = str(abs(d.seconds))
    if d.nanos:
        text += f".{abs(d.nanos):09d}".rstrip("0")
    return f"{'-' if negative else ''}{text}s"


def value_to_python(v: struct_pb2.Value) -> Json:
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_python(v.struct_value)
    if kind == "list_value":
        return [value_to_python(x) for x in v.list_value.values]
    if kind == "number_value":
        n = v.number_value
        # 3.0 -> 3 (vendors expect integers to look like integers), but not -0.0.
        exact = math.isfinite(n) and n.is_integer() and abs(n) <= _EXACT_INT
        return int(n) if exact and (n or math.copysign(1.0, n) > 0) else n
    if kind is None or kind == "null_value":
        return None
    return getattr(v, kind)


def struct_to_python(s: struct_pb2.Struct) -> dict[str, Json]:
    return {k: value_to_python(x) for k, x in s.fields.items()}


def enc_bytes(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def identity(v: Any) -> Any:
    return v


WKT_DECODERS: dict[str, Decode] = {
    "google.protobuf.Timestamp": dec_timestamp_fields,
    "google.protobuf.Duration": dec_duration,
    "google.protobuf.Struct": dec_struct,
    "google.protobuf.Value": dec_value,
    "google.protobuf.ListValue": dec_list_value,
    "google.protobuf.FieldMask": dec_field_mask,
    "google.protobuf.Empty": dec_empty,
}

WKT_ENCODERS: dict[str, Encode] = {
    "google.protobuf.Timestamp": format_timestamp,
    "google.protobuf.Duration": enc_duration,
    "google.protobuf.Struct": struct_to_python,
    "google.protobuf.Value": value_to_python,
    "google.protobuf.ListValue": lambda lv: [value_to_python(x) for x in lv.values],
    "google.protobuf.FieldMask": lambda fm: ",".join(fm.paths),
    "google.protobuf.Empty": lambda _m: {},
}
