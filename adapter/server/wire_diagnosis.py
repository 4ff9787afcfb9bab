"""Which field of a request makes the protobuf parser refuse it.

``FromString`` only says "Wire format was corrupt" or "String field had bad
UTF-8"; a caller needs the field (BadRequest). No protobuf API reports it, so
this walks the wire format (https://protobuf.dev/programming-guides/encoding/)
along the descriptor and names the first field it finds broken: a truncated
tag, varint or length-delimited value, an invalid wire type, invalid UTF-8 in a
string field, or messages nested deeper than the parser allows. It is only run
after the real parser failed, and never raises.

The walk is Python on the event loop, ~1-2 µs a field: a 4 MiB request of
2 million one-byte fields, broken at its end, held the loop 2-4.5 s. So it looks
at ``MAX_FIELDS`` fields at most (a few ms) and otherwise reports nothing (the
caller is told the parser's own reason, without a field).
"""

from __future__ import annotations

from google.protobuf import descriptor as _d

__all__ = ["MAX_FIELDS", "locate_decode_failure"]

_FD = _d.FieldDescriptor
#: upb's default nesting limit (kUpb_WireFormat_DefaultDepthLimit).
_MAX_DEPTH = 100
#: Path components kept when naming a field deep inside a message.
_MAX_PATH_PARTS = 12
#: Fields (at any depth) the walk looks at before it gives up.
MAX_FIELDS = 4096


class _OutOfBudget(Exception):
    pass


class _Broken(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem


def locate_decode_failure(descriptor: _d.Descriptor | None, data: bytes) -> tuple[str, str] | None:
    """``(field path, problem)`` of the first broken field, ``("", problem)``
    when the request as a whole is broken, None when nothing is found."""
    try:
        _Walk().scan(descriptor, memoryview(data), "", 0)
    except _Broken as broken:
        return _short(broken.path), broken.problem
    except Exception:  # out of budget; and a diagnosis must never turn into a crash
        return None
    return None


def _short(path: str) -> str:
    parts = path.split(".")
    return path if len(parts) <= _MAX_PATH_PARTS else ".".join(parts[:_MAX_PATH_PARTS]) + "..."


def _varint(data: memoryview, pos: int, path: str, what: str) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise _Broken(path, f"{what} is not a valid varint")
    raise _Broken(path, f"{what} is truncated")


class _Walk:
    def __init__(self) -> None:
        self.fields_left = MAX_FIELDS

    def scan(self, descriptor: _d.Descriptor | None, data: memoryview, prefix: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _Broken(prefix, f"nests messages more than {_MAX_DEPTH} levels deep")
        is_map_entry = descriptor is not None and descriptor.GetOptions().map_entry
        counts: dict[int, int] = {}
        pos = 0
        while pos < len(data):
            self.fields_left -= 1
            if self.fields_left < 0:
                raise _OutOfBudget
            tag, pos = _varint(data, pos, prefix, "a field tag")
            number, wire_type = tag >> 3, tag & 7
            field = descriptor.fields_by_number.get(number) if descriptor is not None else None
            path = prefix
            if field is not None and not is_map_entry:  # map entries are named by their map field
                index = counts.get(number, 0)
                counts[number] = index + 1
                path = _join(prefix, f"{field.name}[{index}]" if field.is_repeated else field.name)
            if number == 0:
                raise _Broken(prefix, "has a field number 0")
            if wire_type == 0:
                _, pos = _varint(data, pos, path, "a varint")
            elif wire_type in (1, 5):
                pos += 8 if wire_type == 1 else 4
                if pos > len(data):
                    raise _Broken(path, "is truncated")
            elif wire_type == 2:
                length, pos = _varint(data, pos, path, "a length")
                end = pos + length
                if end > len(data):
                    raise _Broken(path, f"declares {length} bytes but the request ends before")
                self._check_value(field, data[pos:end], path, depth)
                pos = end
            elif wire_type in (3, 4):
                return  # groups (proto2 only): leave the verdict to the parser
            else:
                raise _Broken(path, f"has the invalid wire type {wire_type}")

    def _check_value(
        self, field: _d.FieldDescriptor | None, chunk: memoryview, path: str, depth: int
    ) -> None:
        if field is None:
            return  # an unknown field: the parser keeps its bytes as they are
        if field.type == _FD.TYPE_STRING:
            try:
                str(chunk, "utf-8")
            except UnicodeDecodeError:
                raise _Broken(path, "is not valid UTF-8") from None
        elif field.type == _FD.TYPE_MESSAGE:
            self.scan(field.message_type, chunk, path, depth + 1)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
