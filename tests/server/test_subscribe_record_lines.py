"""A record Subscribe cannot read whole goes out without what it could not read, and
is logged; a topic full of them (anyone who may write to it can fill it) must not
write a line per record for every subscriber: one per topic and cause per interval,
then the last one with how many like it there were."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf.message import Message
from openframe.v1 import events_pb2 as openframe_events_pb2

from adapter.server.event_service import EventStreamServicer
from adapter.telemetry.repeated_lines import flush_held_lines
from adapter.transcoding.json_codec import JsonCodec

ALERT_EVENT = openframe_events_pb2.AlertEvent.DESCRIPTOR.full_name
LOGGER = "adapter.server.event_service"


class _BrokenCodec(JsonCodec):
    """A codec with a bug: what the catch-all in ``_event`` is for."""

    def decode(self, cls: type[Message], data: Any, path: str = "") -> Message:
        raise RuntimeError("a bug in the codec")


@dataclass
class _Record:  # the fields of aiokafka's ConsumerRecord that Subscribe reads
    topic: str
    partition: int
    offset: int
    key: bytes = b"alt_1"
    value: bytes = b"{}"
    headers: tuple[tuple[str, bytes | None], ...] = (
        ("ce_id", b"id"),
        ("content-type", f"application/json; proto={ALERT_EVENT}".encode()),
    )


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "could not be read whole" in r.getMessage()]


def test_unreadable_records_are_logged_once_per_topic_and_cause(caplog: pytest.LogCaptureFixture) -> None:
    servicer = EventStreamServicer(
        bootstrap_servers="127.0.0.1:9",  # never reached: only records are converted here
        topics=["t.alerts", "t.other"],
        message_types={ALERT_EVENT: openframe_events_pb2.AlertEvent},
        codec=_BrokenCodec(),
    )
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        events = [servicer._event(_Record("t.alerts", 0, offset)) for offset in range(1000)]
        other = servicer._event(_Record("t.other", 3, 7))
    # Every record still goes out, with what could be read, in order.
    assert [e.offset for e in events] == list(range(1000))
    assert all(e.id == "id" and not e.HasField("data") for e in [*events, other])
    assert _lines(caplog) == [
        "record t.alerts[0]@0 could not be read whole (RuntimeError); it goes out without the rest",
        "record t.other[3]@7 could not be read whole (RuntimeError); it goes out without the rest",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        flush_held_lines()  # what the adapter's stop does (or the interval's end)
    assert _lines(caplog) == [
        "record t.alerts[0]@999 could not be read whole (RuntimeError); it goes out without the rest "
        "(the last of 999 like it held back in the last 0 s)"
    ]
