"""Subscribe's refusals while Kafka is unreachable: counted, and logged by outage
(once when they start, at most once per interval after, once when a stream opens
again), not once per refused call."""

from __future__ import annotations

import logging

import grpc
import pytest

from adapter.server.kafka_unreachable import KafkaUnreachableRefusals

from ..manual_clock import ManualClock

_LOGGER = "adapter.server.kafka_unreachable"


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == _LOGGER]
    caplog.clear()
    return lines


def test_an_outage_is_logged_once_then_summarised_then_closed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=_LOGGER)
    clock = ManualClock()
    refusals = KafkaUnreachableRefusals(summary_interval=60.0, clock=clock)
    cause = ConnectionRefusedError("connect to 127.0.0.1:9 refused")

    status = refusals.refuse(cause)
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert status.message == "Kafka is unreachable; retry later"
    assert "127.0.0.1" not in str(status)
    assert _lines(caplog) == [
        (logging.WARNING, f"Subscribe refused: Kafka is unreachable ({cause!r}); refusing until it answers")
    ]

    for _ in range(500):  # a client retrying in a loop: no line per call
        clock.now += 0.1
        refusals.refuse(cause)
    assert _lines(caplog) == []
    clock.now = 1000.0 + 60.0  # the interval since the first line
    refusals.refuse(cause)
    assert _lines(caplog) == [
        (
            logging.WARNING,
            f"Subscribe refused: Kafka is unreachable ({cause!r}); refusing until it answers"
            " (500 more like it in the last 60 s not logged)",
        )
    ]
    clock.now += 1.0
    refusals.refuse(cause)
    refusals.reached()
    assert _lines(caplog) == [(logging.INFO, "Subscribe reached Kafka again, after 503 refused calls")]
    assert refusals.refused == 503

    refusals.reached()  # no outage: nothing to say
    assert _lines(caplog) == []
    refusals.refuse(cause)  # a new outage is logged at once
    assert [level for level, _ in _lines(caplog)] == [logging.WARNING]
    assert refusals.refused == 504
