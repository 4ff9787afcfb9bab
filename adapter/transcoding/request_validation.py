"""Values protobuf's parser accepts in a caller's request but no upstream call
can carry; each is a :class:`BindingError` (INVALID_ARGUMENT) naming the field.

- **Enum numbers outside the enum.** proto3 enums are open: a client may send
  ``status = 12345`` and the parser keeps it. Forwarded, it became
  ``?status=12345`` upstream.
- **Timestamps outside RFC 3339** (years 0001 to 9999, nanos in ``[0, 1e9)``)
  and **Durations outside** +-10,000 years (google/protobuf/*.proto): they
  cannot be spelled in JSON or a query string.
- **Numbers JSON cannot spell** (NaN, +-Infinity) in ``double``/``float``
  fields and in ``Struct`` values: a JSON encoder would send ``null``.

Built once per request type; :meth:`RequestValidator.check` walks only the
fields that are set. Nesting depth is bounded by the wire parser (upb stops at
100 levels), so the recursion is too.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import descriptor as _d
from google.protobuf.message import Message

from .errors import BindingError

__all__ = ["RequestValidator"]

_FD = _d.FieldDescriptor
#: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
TIMESTAMP_MIN_SECONDS = -62_135_596_800
TIMESTAMP_MAX_SECONDS = 253_402_300_799
#: 10,000 years, google/protobuf/duration.proto.
DURATION_MAX_SECONDS = 315_576_000_000
_NANOS = 999_999_999
_STRUCT_TYPES = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class RequestValidator:
    """Validates request messages of one type (see the module docstring).

    Example::

        RequestValidator(devices_pb2.ListDevicesRequest.DESCRIPTOR).check(request)
    """

    def __init__(self, descriptor: _d.Descriptor) -> None:
        self.descriptor = descriptor
        # A type none of whose fields, however deep, can hold such a value (strings,
        # integers, booleans, bytes: most requests) is not walked at all.
        self._walked = _may_refuse(descriptor, set())

    def check(self, message: Message) -> None:
        """Raises BindingError naming the first field at fault."""
        if self._walked:
            self._message(message, "")

    def _message(self, message: Message, path: str) -> None:
        name = message.DESCRIPTOR.full_name
        if name == "google.protobuf.Timestamp":
            _timestamp(message, path)
            return
        if name == "google.protobuf.Duration":
            _duration(message, path)
            return
        if name in _STRUCT_TYPES:
            _struct_numbers(message, path)
            return
        for field, value in message.ListFields():
            where = _join(path, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                for key, item in value.items():
                    self._single(value_field, item, f"{where}[{key}]")
            elif field.is_repeated:
                for index, item in enumerate(value):
                    self._single(field, item, f"{where}[{index}]")
            else:
                self._single(field, value, where)

    def _single(self, field: _d.FieldDescriptor, value: Any, path: str) -> None:
        if field.type == _FD.TYPE_MESSAGE:
            self._message(value, path)
        elif field.type == _FD.TYPE_ENUM:
            enum = field.enum_type
            assert enum is not None
            if value not in enum.values_by_number:
                raise BindingError(path, f"{value} is not a value of {enum.full_name}")
        elif field.type in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT) and not math.isfinite(value):
            raise BindingError(path, "must be a finite number (JSON has no NaN or Infinity)")


_REFUSABLE_TYPES = frozenset({_FD.TYPE_ENUM, _FD.TYPE_DOUBLE, _FD.TYPE_FLOAT})


def _may_refuse(descriptor: _d.Descriptor, seen: set[str]) -> bool:
    """Whether a message of this type can hold a value :meth:`RequestValidator.check` refuses."""
    name = descriptor.full_name
    if name in ("google.protobuf.Timestamp", "google.protobuf.Duration") or name in _STRUCT_TYPES:
        return True
    if name in seen:  # a recursive type: its other fields decide
        return False
    seen.add(name)
    for field in descriptor.fields:
        if field.type in _REFUSABLE_TYPES:
            return True
        if field.message_type is not None and _may_refuse(field.message_type, seen):
            return True
    return False


def _timestamp(ts: Any, path: str) -> None:
    if not (TIMESTAMP_MIN_SECONDS <= ts.seconds <= TIMESTAMP_MAX_SECONDS and 0 <= ts.nanos <= _NANOS):
        raise BindingError(path, "is outside RFC 3339's range (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z)")


def _duration(d: Any, path: str) -> None:
    same_sign = d.seconds == 0 or d.nanos == 0 or (d.seconds < 0) == (d.nanos < 0)
    if not (abs(d.seconds) <= DURATION_MAX_SECONDS and abs(d.nanos) <= _NANOS and same_sign):
        raise BindingError(path, "is outside google.protobuf.Duration's range (+-10000 years)")


def _struct_numbers(message: Any, path: str) -> None:
    """NaN and infinities anywhere in a Struct, Value or ListValue."""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Struct":
        for key, item in message.fields.items():
            _struct_numbers(item, f"{path}[{key}]")
    elif name == "google.protobuf.ListValue":
        for index, item in enumerate(message.values):
            _struct_numbers(item, f"{path}[{index}]")
    else:
        kind = message.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(message.number_value):
            raise BindingError(path, "must be a finite number (JSON has no NaN or Infinity)")
        if kind in ("struct_value", "list_value"):
            _struct_numbers(getattr(message, kind), path)
