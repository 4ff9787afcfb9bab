"""Typed access to protobuf descriptors.

The protobuf stubs type descriptors as unions of the pure-Python and upb
classes and make ``message_type``/``enum_type`` optional; these helpers state
what the caller already knows (the field is a message/enum field) in one place.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor as _d

__all__ = ["descriptor_of", "enum_of", "field_of", "message_of"]


def descriptor_of(message: Any) -> _d.Descriptor:
    """The descriptor of a message class or instance."""
    descriptor: _d.Descriptor = message.DESCRIPTOR  # (not typing.cast: a call of its own, on every call)
    return descriptor


def field_of(descriptor: _d.Descriptor, name: str) -> _d.FieldDescriptor:
    return descriptor.fields_by_name[name]


def message_of(field: _d.FieldDescriptor) -> _d.Descriptor:
    """The message type of a message-typed field."""
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


def enum_of(field: _d.FieldDescriptor) -> _d.EnumDescriptor:
    """The enum type of an enum-typed field."""
    if field.enum_type is None:
        raise TypeError(f"{field.full_name} is not an enum field")
    return field.enum_type
