"""Spelling of fields and enum values on the wire.

A field is spelled as in the proto unless ``(meshadapter.options.v1.field).wire_name``
renames it. Enum values: ``SEVERITY_CRITICAL`` -> ``"critical"``.

Vendors spell enums as short lower-case words; protos prefix values with the
enum's name (buf's ENUM_VALUE_PREFIX). The wire name is the value name without
that prefix, lower-cased, unless an ``(meshadapter.options.v1.enum_value)``
option spells it out.
"""

from __future__ import annotations

import functools
import re

from google.protobuf import descriptor as _d
from meshadapter.options.v1 import options_pb2

__all__ = ["enum_prefix", "enum_wire_names", "wire_name"]


def enum_prefix(enum: _d.EnumDescriptor) -> str:
    """``DeviceStatus`` -> ``DEVICE_STATUS_``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", enum.name).upper() + "_"


@functools.cache
def _wire_names(enum: _d.EnumDescriptor) -> dict[int, str]:
    prefix = enum_prefix(enum)
    names: dict[int, str] = {}
    for value in enum.values:
        opts = value.GetOptions()
        custom = (
            opts.Extensions[options_pb2.enum_value].wire_name
            if opts.HasExtension(options_pb2.enum_value)
            else ""
        )
        if custom:
            names[value.number] = custom
        else:
            name = value.name[len(prefix) :] if value.name.startswith(prefix) else value.name
            names.setdefault(value.number, name.lower())  # aliases keep the first
    return names


def enum_wire_names(enum: _d.EnumDescriptor) -> dict[int, str]:
    """Number -> wire spelling for every value of ``enum`` (computed once)."""
    return _wire_names(enum)


def wire_name(field: _d.FieldDescriptor) -> str:
    """The field's name in vendor JSON: the proto name unless an option renames it."""
    opts = field.GetOptions()
    if opts.HasExtension(options_pb2.field):
        renamed: str = opts.Extensions[options_pb2.field].wire_name
        if renamed:
            return renamed
    return field.name
