"""RepeatedLines: the first line of a kind at once, then at most one per interval
saying how many like it were held back; every line at interval 0 or at DEBUG; kinds
past the table's bound are never held back."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from adapter.telemetry.logs import TraceContextFilter
from adapter.telemetry.repeated_lines import RepeatedLines, flush_held_lines

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


def test_flush_sends_the_last_held_line_of_each_kind_with_its_count(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(500.0)
    lines = RepeatedLines(logger, interval=10.0, clock=clock)
    for i in range(4):
        lines.log(logging.WARNING, "a", "a %d", i)
        lines.log(logging.ERROR, "b", "b %d", i)
    assert [m for _, m in _lines(caplog)] == ["a 0", "b 0"]
    clock.now += 3.0
    flush_held_lines()  # what the adapter's stop does
    assert sorted(_lines(caplog)) == [
        (logging.WARNING, "a 3 (the last of 3 like it held back in the last 3 s)"),
        (logging.ERROR, "b 3 (the last of 3 like it held back in the last 3 s)"),
    ]
    lines.flush()  # nothing held any more
    assert _lines(caplog) == []
    lines.log(logging.WARNING, "a", "a %d", 4)  # the flushed line counts as the interval's line
    clock.now += 10.0
    lines.log(logging.WARNING, "a", "a %d", 5)
    assert [m for _, m in _lines(caplog)] == ["a 5 (1 more like it in the last 10 s not logged)"]


class _Signal(logging.Handler):
    """Sets ``event`` when a record arrives (on the loop's thread: the timer's)."""

    def __init__(self, event: asyncio.Event) -> None:
        super().__init__()
        self._event = event

    def emit(self, record: logging.LogRecord) -> None:
        self._event.set()


@pytest.fixture
def trace_ids(logger: logging.Logger) -> Iterator[None]:
    """The adapter's filter on the test's logger: each record gets its context's trace id."""
    log_filter = TraceContextFilter()
    logger.addFilter(log_filter)
    yield
    logger.removeFilter(log_filter)


async def test_a_burst_that_ends_is_reported_when_its_interval_is_over(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture, trace_ids: None
) -> None:
    lines = RepeatedLines(logger, interval=0.2)
    tracer = TracerProvider().get_tracer(__name__)
    lines.log(logging.WARNING, "k", "call %d", 0)
    ids = []
    for i in range(1, 6):
        with tracer.start_as_current_span("call") as span:
            ids.append(span.get_span_context().trace_id)
            lines.log(logging.WARNING, "k", "call %d", i)
    assert [m for _, m in _lines(caplog)] == ["call 0"]
    arrived = asyncio.Event()
    handler = _Signal(arrived)
    logger.addHandler(handler)
    try:
        await asyncio.wait_for(arrived.wait(), 5.0)  # the timer sends it, 0.2 s after "call 0"
    finally:
        logger.removeHandler(handler)
    [record] = [r for r in caplog.records if r.name == NAME]
    # sent 0.2 s after "call 0" (later on a loaded machine: the seconds are not the point)
    assert re.fullmatch(r"call 5 \(the last of 5 like it held back in the last \d+ s\)", record.getMessage())
    # sent under the last held call's context: the line leads to that call's trace
    assert record.__dict__["trace_id"] == f"{ids[-1]:032x}"


async def test_forget_drops_the_pending_line_and_lets_the_next_one_out(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    lines = RepeatedLines(logger, interval=0.05)
    lines.log(logging.WARNING, "k", "first")
    lines.log(logging.WARNING, "k", "held")
    lines.forget("k")
    await asyncio.sleep(0.2)  # past the interval: the held line's timer would have sent it
    assert [m for _, m in _lines(caplog)] == ["first"]
    lines.log(logging.WARNING, "k", "next")
    assert [m for _, m in _lines(caplog)] == ["next"]


def test_a_line_held_on_a_loop_that_closed_is_dropped_by_a_later_flush(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop flushes every instance of the process; one left by a loop that ended
    without its stop (a test's) must not write into whoever stops next."""
    lines = RepeatedLines(logger, interval=10.0)

    async def burst() -> None:
        for i in range(3):
            lines.log(logging.WARNING, "k", "call %d", i)

    asyncio.run(burst())  # its loop closes with the timer still pending
    assert [m for _, m in _lines(caplog)] == ["call 0"]
    flush_held_lines()
    assert _lines(caplog) == []
    lines.log(logging.WARNING, "k", "call %d", 3)  # forgotten: the next line goes out at once
    assert [m for _, m in _lines(caplog)] == ["call 3"]
