"""Messages rendered for logs with their secrets masked.

Fields marked ``[debug_redact = true]`` in the protos (passwords, tokens,
integration configurations) are replaced by ``"[REDACTED]"``; inside free-form
``Struct`` values, keys that name secrets are masked too, because a vendor's
``configuration`` object can carry ``password`` or ``secret_key`` anywhere.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import descriptor as _d
from google.protobuf import struct_pb2
from google.protobuf.message import Message

__all__ = ["REDACTED", "redacted"]

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|access[_-]?key|private|authori[sz]ation|credential", re.I
)
_FD = _d.FieldDescriptor


def _plain(value: Any) -> Any:
    if isinstance(value, struct_pb2.Struct):
        return {k: REDACTED if _SECRET_KEY.search(k) else _plain(v) for k, v in value.items()}
    if isinstance(value, struct_pb2.ListValue):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else _plain(v) for k, v in value.items()}
    if isinstance(value, Message):
        return redacted(value)
    if isinstance(value, list | tuple) or type(value).__name__.startswith("Repeated"):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def redacted(message: Message) -> dict[str, Any]:
    """The set fields of ``message`` as plain data, secrets masked."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.GetOptions().debug_redact:
            out[field.name] = REDACTED
        elif (
            field.type == _FD.TYPE_MESSAGE
            and field.message_type is not None
            and field.message_type.GetOptions().map_entry
        ):
            out[field.name] = {k: _plain(v) for k, v in value.items()}
        else:
            out[field.name] = _plain(value)
    return out
