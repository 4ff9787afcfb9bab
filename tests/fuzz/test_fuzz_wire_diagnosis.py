"""Fuzz target: naming the broken field of a request the protobuf parser refuses
(adapter/server/wire_diagnosis.py), a hand-written walk of a caller's bytes.

Invariants: for any request type of the protos and any bytes (arbitrary, or a
valid request cut, with bytes flipped or inserted), the diagnosis never raises,
never blames a request the parser accepts, names only a path that starts with a
field of the request type (or no field), bounded in length, with a short problem.
(Its work budget, ``MAX_FIELDS``, is tested as a table in tests/server.)
"""

from __future__ import annotations

from google.protobuf.message import DecodeError, Message
from hypothesis import event, given
from hypothesis import strategies as st

from adapter.descriptors.loader import load_service_specs
from adapter.server.wire_diagnosis import locate_decode_failure

from .counting import tried
from .profiles import budget
from .strategies import messages

REQUEST_TYPES: dict[str, type[Message]] = {
    m.input_type.DESCRIPTOR.full_name: m.input_type for s in load_service_specs() for m in s.methods
}


@st.composite
def _bytes_of(draw: st.DrawFn, cls: type[Message]) -> bytes:
    kind = draw(st.sampled_from(["arbitrary", "valid", "cut", "flipped", "inserted"]))
    if kind == "arbitrary":
        return draw(st.binary(max_size=300))
    data = bytearray(draw(messages(cls.DESCRIPTOR, hostile=draw(st.booleans()))).SerializeToString())
    if kind == "valid" or not data:
        return bytes(data)
    at = draw(st.integers(0, len(data) - 1))
    if kind == "cut":
        return bytes(data[:at])
    if kind == "flipped":
        data[at] ^= draw(st.integers(1, 255))
        return bytes(data)
    return bytes(data[:at]) + draw(st.binary(min_size=1, max_size=8)) + bytes(data[at:])


@st.composite
def _case(draw: st.DrawFn) -> tuple[type[Message], bytes]:
    cls = REQUEST_TYPES[draw(st.sampled_from(sorted(REQUEST_TYPES)))]
    return cls, draw(_bytes_of(cls))


@budget(500)
@given(_case())
def test_the_diagnosis_never_raises_and_never_blames_a_valid_request(
    case: tuple[type[Message], bytes],
) -> None:
    tried("server.wire_diagnosis")
    cls, data = case
    try:
        cls.FromString(data)
        parsed = True
    except DecodeError:
        parsed = False
    found = locate_decode_failure(cls.DESCRIPTOR, data)
    if parsed:
        assert found is None, (data, found)
        event("parsed: nothing blamed")
        return
    if found is None:
        event("refused: no field found")
        return
    path, problem = found
    event(f"refused: {'a field' if path else 'the request'} named")
    assert 0 < len(problem) <= 100 and problem.isprintable()
    if path:
        head = path.split(".")[0].split("[")[0]
        assert head in cls.DESCRIPTOR.fields_by_name, path
        assert path.count(".") <= 12
