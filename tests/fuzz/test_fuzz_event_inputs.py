"""Property-based fuzzing of what parses vendor event input: webhook verification and
parsing, WebSocket frame parsing, event encoding, dead-letter redaction.

Invariants: only the declared error types escape (``WebhookRejectedError`` from the
verifier, ``UnroutableEventError`` from the encoder, nothing from frame parsing or
redaction); every record the encoder builds parses back as its message; a secret
under a redacted key never survives into a dead letter.

The short run is part of ``make test``; ``make fuzz`` runs them long (docs/fuzzing.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections import Counter
from typing import Any

import orjson
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from adapter.config.settings import EventsSettings
from adapter.descriptors.wire_names import wire_name
from adapter.events.declarations import SignatureScheme
from adapter.events.encoding import EventEncoder, UnroutableEventError, VendorEvent
from adapter.events.routing import EventRouter, load_event_routes
from adapter.events.webhook_auth import SignatureCheck, TokenCheck
from adapter.events.webhook_verifier import WebhookRejectedError, WebhookVerifier
from adapter.events.websocket_frames import FrameReader
from adapter.telemetry.redaction import redact_raw_json
from adapter.transcoding.json_codec import JsonCodec
from tests.events.mesh_fixtures import declared

from .counting import tried
from .profiles import budget

ROUTES = load_event_routes(EventsSettings())
ENCODER = EventEncoder(EventRouter(ROUTES), JsonCodec(), source_uris={})
SECRET = "s3cr3t-value"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-05:00",
            "2026-11-25T12:00:00Z",
            "not a time",
            "open",
            "high",
            "",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)


@st.composite
def deep(draw: st.DrawFn, *, top_object: bool = False) -> Any:
    """A value nested 30-900 levels deep, in objects or arrays (Python's stack gives
    out near 1000: a decoder that recurses must be stopped before)."""
    # Sampled depths as well as drawn ones: Hypothesis favours small integers.
    depth = draw(st.one_of(st.sampled_from([33, 65, 120, 300, 700, 900]), st.integers(30, 900)))
    value: Any = draw(scalars)
    for level in range(depth):
        last = level == depth - 1
        value = {"a": value} if (last and top_object) or draw(st.booleans()) else [value]
    return value


payloads = st.one_of(json_values, deep())


def _json_bytes(value: Any) -> bytes:
    """JSON text of any generated value (the stdlib: big integers and 300 levels too)."""
    return json.dumps(value).encode()


_FD = FieldDescriptor
_TIMES = st.one_of(
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-13-45T99:00:00Z"]),
)
_INTS = {
    _FD.TYPE_INT32: 31,
    _FD.TYPE_SINT32: 31,
    _FD.TYPE_SFIXED32: 31,
    _FD.TYPE_UINT32: 32,
    _FD.TYPE_FIXED32: 32,
}


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values most of the time, a hostile scalar now and then: one bad field
    stops a decode, so values must be mostly valid for the fuzzer to go deep."""
    return st.integers(0, 7).flatmap(lambda n: scalars if n == 0 else valid)


def vendor_json(descriptor: Descriptor, level: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects shaped like ``descriptor`` in the vendor's wire format, with hostile
    values mixed in: the fuzzer reaches every field's decoder (Struct fields get deep
    values, enums unknown names and numbers, timestamps out of range)."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        single = _field_values(field, level)
        if field.is_repeated and not (field.message_type and field.message_type.GetOptions().map_entry):
            single = st.lists(single, max_size=3)
        fields[wire_name(field)] = _mostly(single)
    return st.fixed_dictionaries({}, optional=fields)


def _field_values(field: FieldDescriptor, level: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == _FD.TYPE_MESSAGE:
        name = field.message_type.full_name
        if field.message_type.GetOptions().map_entry:
            return st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
        if name in ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"):
            return st.one_of(deep(top_object=True), payloads)
        if name == "google.protobuf.Timestamp":
            return _TIMES
        if level > 4:
            return st.just({})
        return st.deferred(lambda: vendor_json(field.message_type, level + 1))
    if kind == _FD.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values]
        return st.one_of(st.sampled_from(names), st.integers(-5, 2**40), st.text(max_size=6))
    if kind == _FD.TYPE_STRING:
        return st.text(max_size=12)
    if kind == _FD.TYPE_BOOL:
        return st.booleans()
    if kind in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        return st.floats(allow_nan=False)
    if kind == _FD.TYPE_BYTES:
        return st.sampled_from(["", "AAEC", "not base64!"])
    bits = _INTS.get(kind, 63)
    return st.integers(-(2**bits) - 1, 2**bits)


@st.composite
def routed_events(draw: st.DrawFn) -> VendorEvent:
    route = draw(st.sampled_from(ROUTES))
    descriptor = route.message_type.DESCRIPTOR
    shape = descriptor.fields_by_name[route.payload_field].message_type if route.payload_field else descriptor
    data = draw(_mostly(vendor_json(shape)))
    return VendorEvent(
        source=route.source,
        type=draw(st.sampled_from(route.source_types)),
        id=draw(st.text(max_size=12)),
        action=draw(st.sampled_from(["created", "updated", ""])),
        timestamp=draw(st.one_of(st.just(""), _TIMES)),
        data=data,
    )


@budget(300)
@given(event=routed_events())
def test_encoder_raises_only_unroutable_and_its_records_parse_back(event: VendorEvent) -> None:
    tried("events.encoder")
    try:
        records = ENCODER.records(event)
    except UnroutableEventError as exc:
        assert exc.reason in {"MALFORMED_EVENT", "MALFORMED_FRAME", "UNKNOWN_EVENT_TYPE"}
        return
    route = ENCODER.router.route(event.source, event.type)
    assert route is not None
    for record in records:
        route.message_type.FromString(record.value)  # any consumer can read it


@budget(300)
@given(raw=st.one_of(st.binary(max_size=300), payloads.map(_json_bytes)))
def test_frame_parsing_never_raises(raw: bytes) -> None:
    tried("events.websocket_frame")
    for frame in (raw, raw.decode("utf-8", "replace")):
        event = FRAMES.parse(frame)
        if event is not None:
            ENCODER.records(event) if not event.malformed else None
            ENCODER.dead_letter(
                event, raw=event.raw, source="openframe", channel="websocket", reason="R", detail="d"
            )


FRAMES = FrameReader(declared().streams["openframe"], Counter())


OCTOSPINE_SIGNATURE = declared().webhooks["octospine"].signature
assert OCTOSPINE_SIGNATURE is not None
VERIFIER = WebhookVerifier(
    SignatureCheck(OCTOSPINE_SIGNATURE, [SecretStr("k1"), SecretStr("k2")]),
    tolerance_seconds=300,
    clock=lambda: 1.0e9,
)


@budget(300)
@given(
    body=st.one_of(st.binary(max_size=300), json_values.map(_json_bytes)),
    header=st.one_of(st.none(), st.text(max_size=100), st.just("sha256=")),
    sign=st.booleans(),
)
def test_webhook_verification_raises_only_rejections(body: bytes, header: str | None, sign: bool) -> None:
    tried("events.webhook_verify")
    if sign:
        header = "sha256=" + hmac.new(b"k2", body, hashlib.sha256).hexdigest()
    try:
        delivery = VERIFIER.verify(body, {} if header is None else {"x-octospine-signature": header})
    except WebhookRejectedError as exc:
        assert 400 <= exc.status < 600 and exc.status != 500
        return
    assert sign  # nothing unsigned is ever accepted
    assert isinstance(delivery.body, dict)


BASE64_VERIFIER = WebhookVerifier(
    SignatureCheck(SignatureScheme("x-sig", algorithm="sha512", encoding="base64"), [SecretStr("k")]),
    require_timestamp=False,
)
TOKEN_VERIFIER = WebhookVerifier(
    TokenCheck("Authorization", "Bearer", [SecretStr("the-token")]), require_timestamp=False
)


@budget(200)
@given(
    body=st.one_of(st.binary(max_size=300), json_values.map(_json_bytes)),
    header=st.one_of(st.none(), st.text(max_size=120)),
    authentic=st.booleans(),
)
def test_base64_signatures_and_tokens_raise_only_rejections(
    body: bytes, header: str | None, authentic: bool
) -> None:
    tried("events.webhook_auth")
    signature = base64.b64encode(hmac.new(b"k", body, hashlib.sha512).digest()).decode()
    for verifier, name, good in (
        (BASE64_VERIFIER, "x-sig", signature),
        (TOKEN_VERIFIER, "authorization", "Bearer the-token"),
    ):
        value = good if authentic else header
        try:
            delivery = verifier.verify(body, {} if value is None else {name: value})
        except WebhookRejectedError as exc:
            assert exc.status == 401 and not authentic
            continue
        assert authentic or value == good  # nothing else is ever accepted
        assert isinstance(delivery.body, dict)


@budget(200)
@given(document=json_values, key=st.sampled_from(["password", "api_key", "token", "configuration", "x"]))
def test_redaction_never_lets_a_secret_through(document: Any, key: str) -> None:
    tried("events.redaction")
    wrapped = {"data": [document, {"deeper": {key: SECRET}}]}
    raw = _json_bytes(wrapped)
    out = redact_raw_json(raw, frozenset({"password", "token", "configuration"}))
    if key != "x":
        assert SECRET.encode() not in out
    orjson.loads(out)


@pytest.mark.parametrize("depth", [100, 300, 1000, 2000])
def test_redaction_of_deep_documents(depth: int) -> None:
    raw = b'{"a":' * depth + b'{"password":"' + SECRET.encode() + b'"}' + b"}" * depth
    assert SECRET.encode() not in redact_raw_json(raw, frozenset({"password"}))
