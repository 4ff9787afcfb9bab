"""Request message -> the GraphQL operation's ``variables``.

Each declared variable takes the request field of the same name. Values are spelled as
the upstream's JSON spells them (:class:`~adapter.transcoding.json_codec.JsonCodec`: wire
names, RFC 3339 timestamps, Structs as JSON), except two things GraphQL has its own way
for: a nested message is an input object (its set fields only), and an enum is its name
in GraphQL style, the wire name upper-cased (``PIPELINE_STATUS_ACTIVE`` -> ``ACTIVE``).

Unset fields: a nullable variable is left out (the operation's default applies); a
required one (``ID!``) must be set. Strings, enums, bytes and messages at their proto3
default count as unset; numbers and booleans do not (``0`` and ``false`` are values), nor
does an empty list for a required list variable.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from google.protobuf import descriptor as _d
from google.protobuf.message import Message

from adapter.descriptors.access import enum_of, field_of, message_of
from adapter.descriptors.graphql_operation import GraphQLVariable
from adapter.descriptors.wire_names import enum_wire_names, wire_name
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.json_values import Encode, Json

__all__ = ["VariableEncoder", "graphql_enum_names"]

_FD = _d.FieldDescriptor
_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_]")
_UNSET_WHEN_DEFAULT = frozenset({_FD.TYPE_STRING, _FD.TYPE_ENUM, _FD.TYPE_BYTES, _FD.TYPE_MESSAGE})


@functools.cache
def graphql_enum_names(enum: _d.EnumDescriptor) -> dict[int, str]:
    """Number -> GraphQL enum value: the wire name upper-cased (``"active"`` -> ``ACTIVE``)."""
    return {n: _NOT_A_NAME.sub("_", wire).upper() for n, wire in enum_wire_names(enum).items()}


def _is_plain_message(field: _d.FieldDescriptor) -> bool:
    # google.protobuf types (Timestamp, Struct, wrappers...) keep their JSON forms.
    return field.type == _FD.TYPE_MESSAGE and not message_of(field).full_name.startswith("google.protobuf.")


class VariableEncoder:
    """Encodes one method's request messages into variables; built once at start-up."""

    def __init__(
        self, request: _d.Descriptor, variables: tuple[GraphQLVariable, ...], codec: JsonCodec
    ) -> None:
        self._codec = codec
        self._variables = [(v, field_of(request, v.name)) for v in variables]
        self._encoders: dict[str, Encode] = {}
        for _, field in self._variables:
            self._encoder(field)  # builds the tables now, not on the first call

    def encode(self, message: Message) -> dict[str, Json]:
        """Raises BindingError naming a required field left unset."""
        out: dict[str, Json] = {}
        for variable, field in self._variables:
            value = getattr(message, field.name)
            if field.is_repeated:
                if not value and not variable.required:
                    continue  # a required list is sent even when empty
            elif not _is_set(message, field, value):
                if variable.required:
                    declared = f"${variable.name}: {variable.type_text}"
                    raise BindingError(field.name, f"must be set (the GraphQL operation declares {declared})")
                continue
            out[variable.name] = self._encoder(field)(value)
        return out

    # construction -------------------------------------------------------------------

    def _encoder(self, field: _d.FieldDescriptor) -> Encode:
        found = self._encoders.get(field.full_name)
        if found is not None:
            return found
        element = field
        is_map = field.type == _FD.TYPE_MESSAGE and message_of(field).GetOptions().map_entry
        if is_map:
            element = field_of(message_of(field), "value")
        if element.type != _FD.TYPE_ENUM and not _is_plain_message(element):
            encoder = self._codec.field_encoder(field)  # scalars and well-known types as JSON
        else:
            single = self._single(element)
            if is_map:
                encoder = lambda m: {str(k): single(v) for k, v in m.items()}  # noqa: E731
            elif field.is_repeated:
                encoder = lambda xs: [single(x) for x in xs]  # noqa: E731
            else:
                encoder = single
        self._encoders[field.full_name] = encoder
        return encoder

    def _single(self, field: _d.FieldDescriptor) -> Encode:
        if field.type == _FD.TYPE_ENUM:
            names = graphql_enum_names(enum_of(field))
            return lambda n: names.get(n, n)
        return self._input_object

    def _input_object(self, message: Message) -> dict[str, Json]:
        return {wire_name(f): self._encoder(f)(v) for f, v in message.ListFields()}


def _is_set(message: Message, field: _d.FieldDescriptor, value: Any) -> bool:
    if field.has_presence:
        return message.HasField(field.name)
    if field.type in _UNSET_WHEN_DEFAULT:
        return bool(value)
    return True
