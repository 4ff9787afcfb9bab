"""The stream's frame reader on the vendor's control frames: an error frame is counted
and logged, and a vendor that sends nothing else does not write a line per frame."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from adapter.events.websocket_frames import FrameReader
from adapter.telemetry.repeated_lines import flush_held_lines

from .mesh_fixtures import declared


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "stream error frame" in r.getMessage()]


def test_error_frames_are_counted_each_and_logged_once_then_their_tail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counts: Counter[str] = Counter()
    reader = FrameReader(declared().streams["openframe"], counts)
    with caplog.at_level(logging.WARNING, logger="adapter.events.websocket_frames"):
        for n in range(50):
            frame = b'{"type":"error","code":"rate_limited","message":"slow down %d"}' % n
            assert reader.parse(frame) is None  # a control frame: no event, nothing dead-lettered
        during = _lines(caplog)
        flush_held_lines()  # what the adapter's stop does, or the interval's end
        tail = _lines(caplog)[len(during) :]
    assert counts["control.error"] == 50
    assert during == [
        'openframe stream error frame: {"type":"error","code":"rate_limited","message":"slow down 0"}'
    ]
    assert len(tail) == 1 and '"slow down 49"' in tail[0] and "(the last of 49 like it held back" in tail[0]
