"""Upstream timestamps read to the nanosecond: every RFC 3339 form protobuf's own
parser reads gives its result, and the lenient forms vendors send (no offset, a
comma before the fraction, lower-case ``t``/``z``) read as they mean."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from adapter.transcoding.json_values import MalformedPayloadError, timestamp_parts

# What google.protobuf's Timestamp.FromJsonString reads: the answer to compare with.
RFC_3339 = [
    "2026-11-25T09:41:17Z",
    "2026-11-25T09:41:17.250Z",
    "2026-11-25T09:41:17.5Z",
    "2026-11-25T09:41:17.123456Z",
    "2026-11-25T09:41:17.1234567Z",
    "2026-11-25T09:41:17.123456789Z",
    "2026-11-25T09:41:17.000000001Z",
    "2026-11-25T09:41:17.250-07:30",
    "2026-11-25T09:41:17+14:00",
    "2026-11-25T09:41:17.999999999+00:00",
    "1969-12-31T23:59:59.999999999Z",
    "1970-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "2024-02-29T12:00:00Z",
]

# Forms protobuf refuses that the adapter reads, and what they mean.
LENIENT = [
    ("2026-11-25T09:41:17", (1_795_599_677, 0)),  # no offset: UTC
    ("2026-11-25T09:41:17.250", (1_795_599_677, 250_000_000)),
    ("2026-11-25T09:41:17,25Z", (1_795_599_677, 250_000_000)),  # ISO 8601's comma
    ("2026-11-25t09:41:17.5z", (1_795_599_677, 500_000_000)),  # RFC 3339 allows lower case
    ("2026-11-25T09:41:17.1234567891Z", (1_795_599_677, 123_456_789)),  # past 9 digits: cut
]

REFUSED = [
    "",
    "yesterday",
    "2026-02-30T00:00:00Z",
    "2026-11-25T24:00:00Z",
    "2026-11-25T09:41:60Z",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "2026-11-25T09:41:17Z" + " " * 60,  # longer than any timestamp
]


@pytest.mark.parametrize("text", RFC_3339)
def test_rfc_3339_reads_as_protobuf_reads_it(text: str) -> None:
    expected = Timestamp()
    expected.FromJsonString(text)
    assert timestamp_parts(text, "t") == (expected.seconds, expected.nanos)


@pytest.mark.parametrize(("text", "parts"), LENIENT)
def test_lenient_forms_keep_their_meaning(text: str, parts: tuple[int, int]) -> None:
    assert timestamp_parts(text, "t") == parts


@pytest.mark.parametrize("value", [*REFUSED, None, 1_795_599_677, ["2026-11-25T09:41:17Z"]])
def test_anything_else_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        timestamp_parts(value, "device.last_seen")  # type: ignore[arg-type]
    assert caught.value.path == "device.last_seen"
