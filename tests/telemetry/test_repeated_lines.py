"""RepeatedLines: the first line of a kind at once, then at most one per interval
saying how many like it were held back; every line at interval 0 or at DEBUG; kinds
past the table's bound are never held back."""

from __future__ import annotations

import logging

import pytest

from adapter.telemetry.repeated_lines import RepeatedLines

from ..manual_clock import ManualClock

NAME = "tests.repeated_lines"


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    out = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == NAME]
    caplog.clear()
    return out


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.INFO, logger=NAME)
    return logging.getLogger(NAME)


def test_a_kind_logs_once_then_once_per_interval_with_the_count(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(500.0)
    lines = RepeatedLines(logger, interval=10.0, clock=clock)
    lines.log(logging.WARNING, "UNAVAILABLE", "%s -> %s: %s", "/a.S/M", "UNAVAILABLE", "down")
    assert _lines(caplog) == [(logging.WARNING, "/a.S/M -> UNAVAILABLE: down")]
    for _ in range(99):
        clock.now += 0.05
        lines.log(logging.WARNING, "UNAVAILABLE", "%s -> %s: %s", "/a.S/M", "UNAVAILABLE", "down")
    lines.log(logging.INFO, "NOT_FOUND", "%s -> %s: %s", "/a.S/M", "NOT_FOUND", "no such device")
    assert _lines(caplog) == [(logging.INFO, "/a.S/M -> NOT_FOUND: no such device")]  # another kind: at once
    clock.now = 500.0 + 10.0
    lines.log(logging.WARNING, "UNAVAILABLE", "%s -> %s: %s", "/a.S/M", "UNAVAILABLE", "still down")
    assert _lines(caplog) == [
        (logging.WARNING, "/a.S/M -> UNAVAILABLE: still down (99 more like it in the last 10 s not logged)")
    ]
    clock.now += 30.0  # nothing held back since: a plain line
    lines.log(logging.WARNING, "UNAVAILABLE", "%s -> %s: %s", "/a.S/M", "UNAVAILABLE", "down again")
    assert _lines(caplog) == [(logging.WARNING, "/a.S/M -> UNAVAILABLE: down again")]


def test_interval_zero_and_debug_log_every_line(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    every = RepeatedLines(logger, interval=0.0, clock=ManualClock(500.0))
    for i in range(3):
        every.log(logging.WARNING, "k", "line %d", i)
    assert [m for _, m in _lines(caplog)] == ["line 0", "line 1", "line 2"]
    caplog.set_level(logging.DEBUG, logger=NAME)
    debugging = RepeatedLines(logger, interval=10.0, clock=ManualClock(500.0))
    for i in range(3):
        debugging.log(logging.WARNING, "k", "line %d", i)
    assert [m for _, m in _lines(caplog)] == ["line 0", "line 1", "line 2"]


def test_a_level_not_logged_counts_nothing_and_kinds_past_the_bound_always_log(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(500.0)
    lines = RepeatedLines(logger, interval=10.0, max_kinds=2, clock=clock)
    lines.log(logging.DEBUG, "quiet", "not at INFO")  # below the logger's level: no state either
    for kind in ("a", "b", "c", "c", "a"):
        lines.log(logging.INFO, kind, "kind %s", kind)
    # a and b fill the table; c is past the bound and logs each time; a's second is held back
    assert [m for _, m in _lines(caplog)] == ["kind a", "kind b", "kind c", "kind c"]
    clock.now += 10.0
    lines.log(logging.INFO, "a", "kind %s", "a")
    assert [m for _, m in _lines(caplog)] == ["kind a (1 more like it in the last 10 s not logged)"]
