"""Hostile requests built from a method's input descriptor (no hand list of
RPCs or fields): each is ``(kind, request bytes, codes allowed, stays_local)``.
``stays_local``: the adapter must answer without calling the vendor."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import orjson
from google.protobuf import descriptor as _d
from google.protobuf import message_factory
from google.protobuf.message import Message

from adapter.descriptors.loader import import_generated_modules, load_service_specs

C = grpc.StatusCode
_FD = _d.FieldDescriptor
INVALID = frozenset({C.INVALID_ARGUMENT})
#: Anything but the codes a caller can do nothing with.
ANY_ANSWER = frozenset(C) - {C.UNKNOWN, C.INTERNAL}
_PLACEHOLDER = "\x01hostile-placeholder\x01"
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # grpc.max_receive_message_bytes default


@dataclass(frozen=True)
class Hostile:
    kind: str
    payload: bytes
    allowed: frozenset[grpc.StatusCode]
    stays_local: bool


FieldPath = tuple[_d.FieldDescriptor, ...]


def _paths(
    desc: _d.Descriptor, want: Callable[[_d.FieldDescriptor], bool], depth: int = 0
) -> Iterator[FieldPath]:
    """Singular field paths (no repeated or map hops) to fields ``want`` accepts."""
    if depth > 4:
        return
    for field in desc.fields:
        if field.is_repeated:
            continue
        if want(field):
            yield (field,)
        if field.type == _FD.TYPE_MESSAGE and not field.message_type.full_name.startswith("google.protobuf."):
            for rest in _paths(field.message_type, want, depth + 1):
                yield (field, *rest)


def _target(message: Message, path: FieldPath) -> Message:
    for field in path[:-1]:
        message = getattr(message, field.name)
    return message


def _message_named(path: FieldPath, name: str) -> bool:
    return path[-1].type == _FD.TYPE_MESSAGE and path[-1].message_type.full_name == name


@dataclass(frozen=True)
class Rpc:
    """One RPC of the protos, as the table needs it."""

    path: str
    input_type: type[Message]
    server_streaming: bool
    #: Dotted field paths bound to the URL path (upstream-backed RPCs).
    path_vars: tuple[tuple[str, ...], ...] = ()
    idempotency_key_field: str = ""


def every_rpc() -> list[Rpc]:
    """Every method of every service in the generated protos."""
    specs = {m.path: m for s in load_service_specs() for m in s.methods}
    rpcs: list[Rpc] = []
    for file in import_generated_modules():
        for service in file.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                spec = specs.get(path)
                rpcs.append(
                    Rpc(
                        path=path,
                        input_type=message_factory.GetMessageClass(method.input_type),
                        server_streaming=method.server_streaming,
                        path_vars=tuple(v.field_path for v in spec.template.variables) if spec else (),
                        idempotency_key_field=spec.idempotency_key_field if spec else "",
                    )
                )
    return sorted(rpcs, key=lambda r: r.path)


def baseline(rpc: Rpc) -> Message:
    """A request whose path variables hold an id-like value (the vendor answers 404)."""
    request = rpc.input_type()
    for var in rpc.path_vars:
        target: Message = request
        for name in var[:-1]:
            target = getattr(target, name)
        setattr(target, var[-1], "x1")
    return request


def _with(rpc: Rpc, path: FieldPath, apply: Callable[[Message, _d.FieldDescriptor], None]) -> bytes:
    request = baseline(rpc)
    apply(_target(request, path), path[-1])
    return request.SerializeToString()


def hostile_requests(rpc: Rpc) -> list[Hostile]:
    desc = rpc.input_type.DESCRIPTOR
    out = [Hostile("undecodable_bytes", b"\xff\xff\xff", INVALID, True)]
    out.append(Hostile("truncated_length", b"\x0a\x7fabc", INVALID, True))
    out.append(
        Hostile(
            "oversize",
            b"\x0a" + _varint(MAX_REQUEST_BYTES + 10) + b"x" * (MAX_REQUEST_BYTES + 10),
            frozenset({C.RESOURCE_EXHAUSTED}),
            True,
        )
    )

    strings = list(_paths(desc, lambda f: f.type == _FD.TYPE_STRING))
    if strings:
        path = strings[0]
        raw = _with(rpc, path, lambda m, f: setattr(m, f.name, _PLACEHOLDER))
        out.append(
            Hostile(
                "invalid_utf8", raw.replace(_PLACEHOLDER.encode(), b"\xff" * len(_PLACEHOLDER)), INVALID, True
            )
        )
        out.append(
            Hostile(
                "long_string_1MiB",
                _with(rpc, path, lambda m, f: setattr(m, f.name, "z" * (1 << 20))),
                ANY_ANSWER,
                False,
            )
        )
        out.append(
            Hostile(
                "control_chars",
                _with(rpc, path, lambda m, f: setattr(m, f.name, "a\r\n\x00b/../c?d#e")),
                ANY_ANSWER,
                False,
            )
        )
    for path in list(_paths(desc, lambda f: f.type == _FD.TYPE_ENUM))[:1]:
        out.append(
            Hostile("enum_12345", _with(rpc, path, lambda m, f: setattr(m, f.name, 12345)), INVALID, True)
        )
    for path in [
        p
        for p in _paths(desc, lambda f: f.type == _FD.TYPE_MESSAGE)
        if _message_named(p, "google.protobuf.Timestamp")
    ][:1]:
        out.append(
            Hostile(
                "timestamp_2**62",
                _with(rpc, path, lambda m, f: setattr(getattr(m, f.name), "seconds", 2**62)),
                INVALID,
                True,
            )
        )
        out.append(
            Hostile(
                "timestamp_negative_nanos",
                _with(rpc, path, lambda m, f: setattr(getattr(m, f.name), "nanos", -1)),
                INVALID,
                True,
            )
        )
    for path in [
        p
        for p in _paths(desc, lambda f: f.type == _FD.TYPE_MESSAGE)
        if _message_named(p, "google.protobuf.Struct")
    ][:1]:
        out.append(
            Hostile(
                "deep_struct_200",
                _with(rpc, path, lambda m, f: getattr(m, f.name).update(_nested(200))),
                INVALID,
                True,
            )
        )
        out.append(
            Hostile(
                "deep_struct_30",
                _with(rpc, path, lambda m, f: getattr(m, f.name).update(_nested(30))),
                ANY_ANSWER,
                False,
            )
        )
        out.append(
            Hostile(
                "struct_nan",
                _with(rpc, path, lambda m, f: getattr(m, f.name).update({"n": float("nan")})),
                INVALID,
                True,
            )
        )
    if rpc.idempotency_key_field:
        key = rpc.idempotency_key_field
        for kind, value in (
            ("header_crlf", "k\r\nX-Injected: 1"),
            ("header_non_ascii", "ключ"),
            ("header_too_long", "k" * 300),
        ):
            request = baseline(rpc)
            setattr(request, key, value)
            out.append(Hostile(kind, request.SerializeToString(), INVALID, True))
    if "page_token" in desc.fields_by_name:
        forged = (
            base64.urlsafe_b64encode(orjson.dumps({"v": 1, "s": "page", "p": 1, "n": 100000, "f": ""}))
            .decode()
            .rstrip("=")
        )
        for kind, token in (
            ("forged_token", forged),
            ("garbage_token", "%%%"),
            ("huge_token", "A" * 100_000),
        ):
            request = baseline(rpc)
            request.page_token = token
            out.append(Hostile(kind, request.SerializeToString(), INVALID, True))
        request = baseline(rpc)
        request.page_size = -1
        out.append(Hostile("negative_page_size", request.SerializeToString(), INVALID, True))
    for var in rpc.path_vars:
        for value in (".", ".."):
            request = baseline(rpc)
            target: Message = request
            for name in var[:-1]:
                target = getattr(target, name)
            setattr(target, var[-1], value)
            out.append(Hostile(f"dot_segment_{value}", request.SerializeToString(), INVALID, True))
    if "update_mask" in desc.fields_by_name:
        request = baseline(rpc)
        request.update_mask.paths.append("no.such.field")
        out.append(Hostile("bad_update_mask", request.SerializeToString(), INVALID, True))
    # Fields a newer client knows: ignored, never an error. (A valid Subscribe would go on
    # to Kafka, which this table runs without: streaming RPCs get invalid requests only.)
    if not rpc.server_streaming:
        out.append(
            Hostile(
                "unknown_fields",
                baseline(rpc).SerializeToString() + b"\xa0\x1f\x01\xaa\x1f\x03abc",
                ANY_ANSWER,
                False,
            )
        )
    return out


def _nested(levels: int) -> dict[str, object]:
    doc: dict[str, object] = {}
    for _ in range(levels):
        doc = {"a": doc}
    return doc


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
