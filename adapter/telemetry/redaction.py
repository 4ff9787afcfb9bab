"""Messages and raw payloads rendered with their secrets masked.

Fields marked ``[debug_redact = true]`` in the protos (passwords, tokens,
integration configurations) are replaced by ``"[REDACTED]"``; inside free-form
``Struct`` values, keys that name secrets are masked too, because a vendor's
``configuration`` object can carry ``password`` or ``secret_key`` anywhere.

:func:`redact_raw_json` does the same for raw vendor JSON kept for operators (the
dead-letter topic, hence the spool), where the schema may be unknown: every key
that is the wire name of a debug_redact field anywhere in the protos, or that
names a secret, is masked at any depth.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

import orjson
from google.protobuf import descriptor as _d
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from adapter.descriptors.wire_names import wire_name

__all__ = ["REDACTED", "redact_raw_json", "redacted", "redacted_wire_names"]

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


def redacted_wire_names(files: Iterable[_d.FileDescriptor]) -> frozenset[str]:
    """JSON names of every ``debug_redact`` field of the messages in ``files``."""
    names: set[str] = set()
    pending: list[_d.Descriptor] = [m for f in files for m in f.message_types_by_name.values()]
    while pending:
        message = pending.pop()
        pending.extend(message.nested_types)
        names.update(wire_name(f) for f in message.fields if f.GetOptions().debug_redact)
    return frozenset(names)


def _secret(key: object, names: frozenset[str]) -> bool:
    return isinstance(key, str) and (key in names or bool(_SECRET_KEY.search(key)))


def redact_raw_json(raw: bytes, names: frozenset[str]) -> bytes:
    """``raw`` with the values of secret keys masked, when it is JSON. A payload that
    cannot be parsed, walked and written back (not JSON, or nested past orjson's
    limits) is kept only when no secret key name appears in it; otherwise it is
    withheld, with its size and hash for correlation. Never raises."""
    try:
        document = orjson.loads(raw)
        stack: list[Any] = [document]
        while stack:  # iterative: the payload may be nested deeper than Python's stack
            node = stack.pop()
            if isinstance(node, dict):
                for key, value in node.items():
                    if _secret(key, names):
                        node[key] = REDACTED
                    elif isinstance(value, dict | list):
                        stack.append(value)
            elif isinstance(node, list):
                stack.extend(v for v in node if isinstance(v, dict | list))
        return orjson.dumps(document)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    text = raw.decode("utf-8", "replace")
    named = sorted(n for n in names if f'"{n}"' in text)
    if not named and not _SECRET_KEY.search(text):
        return raw
    digest = hashlib.sha256(raw).hexdigest()
    return orjson.dumps(
        {
            "withheld": f"{len(raw)}-byte payload that could not be redacted field by field",
            "mentions": named or ["a key naming a secret"],
            "sha256": digest,
        }
    )
