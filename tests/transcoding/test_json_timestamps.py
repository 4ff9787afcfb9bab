"""Upstream timestamps read to the nanosecond: every RFC 3339 form protobuf's own
parser reads gives its result, and the lenient forms vendors send (no offset, a
comma before the fraction, lower-case ``t``/``z``) read as they mean."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.transcoding.json_values import MalformedPayloadError, _timestamp_parts, timestamp_parts

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


# -- the fast path for the commonest shapes ------------------------------------------

_FAST_SHAPES = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.{ms}Z", "%Y-%m-%dT%H:%M:%S.%fZ")


def _outcome(read: Callable[[str, str], tuple[int, int]], text: str) -> object:
    try:
        return read(text, "t")
    except MalformedPayloadError as exc:
        return ("refused", str(exc))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(moment=st.datetimes(), shape=st.sampled_from(_FAST_SHAPES))
def test_the_commonest_shapes_read_as_protobuf_and_the_general_path_read_them(
    moment: dt.datetime, shape: str
) -> None:
    text = moment.strftime(shape.replace("{ms}", f"{moment.microsecond // 1000:03d}"))
    if moment.year < 1000:  # strftime does not pad every platform's years
        text = f"{moment.year:04d}" + text[text.index("-") :]
    expected = Timestamp()
    expected.FromJsonString(text)
    assert timestamp_parts(text, "t") == (expected.seconds, expected.nanos) == _timestamp_parts(text, "t")


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    base=st.sampled_from(["2026-11-25T09:41:17Z", "2026-11-25T09:41:17.250Z", "2024-02-29T23:59:59.999999Z"]),
    at=st.integers(min_value=0, max_value=26),
    char=st.sampled_from(list("0123456789-:.,+TtZz Ø")),
)
def test_a_near_miss_of_those_shapes_ends_as_the_general_path_ends_it(base: str, at: int, char: str) -> None:
    text = base[:at] + char + base[at + 1 :]
    assert _outcome(timestamp_parts, text) == _outcome(_timestamp_parts, text)
