"""How a replica reads one record of the shared watermark topic: any record it cannot
read as a mark is skipped, never an error that stops the load (and with it the stream's
ownership) for every replica."""

from __future__ import annotations

import datetime as dt

import pytest

from adapter.coordination.shared_watermarks import _mark_of

UTC = dt.UTC


@pytest.mark.parametrize(
    ("value", "mark"),
    [
        (b'{"mark": "2026-12-04T03:00:00+00:00", "replica": "r1"}', dt.datetime(2026, 12, 4, 3, tzinfo=UTC)),
        (b'{"mark": "2026-12-04T04:00:00+01:00"}', dt.datetime(2026, 12, 4, 3, tzinfo=UTC)),
        (b'{"mark": "2026-12-04T03:00:00"}', dt.datetime(2026, 12, 4, 3, tzinfo=UTC)),  # naive: UTC
        # Readable, but before year 1 in UTC: astimezone() raised OverflowError, which
        # the load did not expect, so no replica could take the stream.
        (b'{"mark": "0001-01-01T00:00:00+05:00"}', None),
        (b'{"mark": "9999-12-31T23:59:59-05:00"}', None),
        (b'{"mark": 1733281200}', None),
        (b'{"mark": null}', None),
        (b'["mark"]', None),
        (b"not json", None),
        (b"", None),
    ],
)
def test_a_record_is_a_mark_or_skipped(value: bytes, mark: dt.datetime | None) -> None:
    assert _mark_of(value) == mark
