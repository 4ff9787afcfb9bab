"""Fuzz targets: what ``EventService.Subscribe`` reads from outside
(adapter/server/event_service.py).

``events.subscribe_record``: any record on an event topic (the adapter's own records with
their headers changed, dropped or set to null, any ``ce_time`` text, any content type, any
key and value bytes; anyone with write access to a topic can produce one) becomes an
``Event`` and nothing escapes: a record a stream cannot read must not end every
subscriber's stream at the same offset, again on each resume. The event's topic,
partition and offset are the record's; its ``time`` is set only from a readable,
in-range ``ce_time``; an unchanged record of the adapter's own carries its message as
``data``, equal to what was encoded.

``events.subscribe_position``: any text as a resume ``position`` raises ``ValueError``
(INVALID_ARGUMENT) or gives partitions and offsets within Kafka's ranges.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

import orjson
from google.protobuf.message import Message
from hypothesis import event, given
from hypothesis import strategies as st
from meshadapter.v1 import events_pb2

from adapter.events.encoding import UnroutableEventError, VendorEvent
from adapter.server.event_service import EventStreamServicer, decode_position
from adapter.transcoding.json_codec import JsonCodec

from .counting import tried
from .profiles import budget
from .strategies import json_values
from .test_fuzz_event_inputs import ENCODER, ROUTES, routed_events

SERVICE = EventStreamServicer(
    bootstrap_servers="127.0.0.1:9",  # never reached: only records are converted here
    topics=ENCODER.router.topics(),
    message_types={r.full_name: r.message_type for r in ROUTES},
    codec=JsonCodec(),
)


@dataclass(frozen=True)
class Record:
    """What aiokafka's ``ConsumerRecord`` gives the service (header values may be None)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


_CE_TIMES = st.one_of(
    st.sampled_from(
        [
            "2026-12-04T03:00:00Z",
            "2026-12-04T03:00:00+00:00",
            "0001-01-01T00:00:00+05:00",  # in range as written, before year 1 in UTC
            "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
            "0001-01-01T00:00:00",
            "2026-02-30T00:00:00Z",
            "not a time",
            "",
        ]
    ),
    st.text(max_size=30),
)
_CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; proto=openframe.v1.Nope",
            "application/protobuf; proto=x",
            "application/protobuf",
            "application/json; proto",
            "application/json; proto==; =; ;;",
            "text/plain",
        ]
    ),
    st.text(max_size=40),
)
_HEADER_VALUE = st.one_of(st.none(), st.binary(max_size=40), _CE_TIMES.map(str.encode))


@st.composite
def _changed(
    draw: st.DrawFn, headers: tuple[tuple[str, bytes | None], ...]
) -> tuple[tuple[str, bytes | None], ...]:
    out = list(headers)
    for _ in range(draw(st.integers(1, 4))):
        what = draw(st.sampled_from(["ce_time", "content-type", "other", "drop", "null"]))
        if what == "ce_time":
            out.append(("ce_time", draw(st.one_of(_CE_TIMES.map(str.encode), st.none()))))
        elif what == "content-type":
            out.append(("content-type", draw(st.one_of(_CONTENT_TYPES.map(str.encode), st.none()))))
        elif what == "other":
            out.append((draw(st.text(max_size=12)), draw(_HEADER_VALUE)))
        elif out and what == "drop":
            out.pop(draw(st.integers(0, len(out) - 1)))
        elif out:
            index = draw(st.integers(0, len(out) - 1))
            out[index] = (out[index][0], None)
    # A record's last header of a name wins in the service: shuffle who is last.
    return tuple(draw(st.permutations(out)))


@st.composite
def _records(draw: st.DrawFn) -> tuple[Record, Message | None]:
    """A record, and the message it must carry as data (None: no such promise)."""
    vendor_event: VendorEvent = draw(routed_events())
    try:
        outbound = ENCODER.records(vendor_event)[0]
        _, message = ENCODER.message(vendor_event)
    except UnroutableEventError:
        outbound = None
    topic = outbound.topic if outbound else draw(st.sampled_from(SERVICE.topics))
    position = {
        "topic": topic,
        "partition": draw(st.integers(0, 2**31 - 1)),
        "offset": draw(st.integers(0, 2**63 - 1)),
    }
    if outbound is not None and draw(st.integers(0, 3)) == 0:
        return Record(key=outbound.key, value=outbound.value, headers=outbound.headers, **position), message
    headers = outbound.headers if outbound is not None else ()
    value = (
        draw(st.one_of(st.binary(max_size=200), json_values().map(_json_bytes)))
        if outbound is None or draw(st.booleans())
        else outbound.value
    )
    key = (
        draw(st.one_of(st.none(), st.binary(max_size=20)))
        if draw(st.booleans())
        else (outbound and outbound.key)
    )
    return Record(key=key, value=value, headers=draw(_changed(headers)), **position), None


def _json_bytes(doc: object) -> bytes:
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return b"[" * 1020 + b"]" * 1020


def _readable_utc(text: str) -> bool:
    try:
        when = dt.datetime.fromisoformat(text)
        return (when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)).year >= 1
    except (ValueError, OverflowError):
        return False


@budget(400)
@given(_records())
def test_any_record_becomes_an_event_and_nothing_escapes(case: tuple[Record, Message | None]) -> None:
    tried("events.subscribe_record")
    record, own = case
    converted = SERVICE._event(record)
    assert isinstance(converted, events_pb2.Event)
    assert (converted.topic, converted.partition, converted.offset) == (
        record.topic,
        record.partition,
        record.offset,
    )
    times = [v for k, v in record.headers if k == "ce_time" and v is not None]
    last_time = times[-1] if times else None
    readable = last_time is not None and _readable_utc(last_time.decode("utf-8", "replace"))
    assert converted.HasField("time") == readable, (last_time, converted.time)
    if readable:
        event("with time")
    if converted.HasField("data"):
        event("with data")
    if own is not None:
        assert converted.HasField("data"), "an unchanged record of the adapter's own carries its message"
        carried = type(own)()
        assert converted.data.Unpack(carried) and carried == own


@budget(300)
@given(
    st.one_of(
        st.text(max_size=80),
        json_values().map(lambda d: base64.urlsafe_b64encode(_json_bytes(d)).rstrip(b"=").decode()),
        st.dictionaries(
            st.text(max_size=5),
            st.dictionaries(
                st.one_of(st.text(max_size=25), st.integers().map(str)), json_values(), max_size=3
            ),
            max_size=3,
        ).map(lambda d: base64.urlsafe_b64encode(_json_bytes(d)).rstrip(b"=").decode()),
        st.dictionaries(  # the shape of a real position, numbers near and past Kafka's ranges
            st.text(max_size=5),
            st.dictionaries(st.integers(-3, 2**33).map(str), st.integers(-3, 2**65), max_size=3),
            max_size=3,
        ).map(lambda d: base64.urlsafe_b64encode(_json_bytes(d)).rstrip(b"=").decode()),
    )
)
def test_any_position_is_refused_with_value_error_or_within_kafka_ranges(token: str) -> None:
    tried("events.subscribe_position")
    try:
        position = decode_position(token)
    except ValueError:
        event("refused")
        return
    event("read")
    for parts in position.values():
        for partition, offset in parts.items():
            assert 0 <= partition <= 2**31 - 1 and 0 <= offset <= 2**63 - 1
