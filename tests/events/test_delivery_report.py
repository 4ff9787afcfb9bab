"""What the drainer tells operators: state, health and log lines over an outage."""

from __future__ import annotations

import logging

import pytest

from adapter.events.delivery_report import DeliveryReport
from adapter.events.kafka_outcomes import DeliveryFailed, KafkaUnavailable

from ..manual_clock import ManualClock


class Spool:
    depth = 12
    oldest_pending_age = 3.0


def report(clock: ManualClock, health: list[tuple[bool, str]]) -> DeliveryReport:
    return DeliveryReport(
        Spool(), progress_interval=30.0, clock=clock, on_health=lambda ok, why: health.append((ok, why))
    )


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "adapter.events.delivery"]


def test_an_outage_is_told_once_then_every_interval_then_its_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="adapter.events.delivery")
    clock, health = ManualClock(), list[tuple[bool, str]]()
    r = report(clock, health)
    r.started()
    r.serving()
    assert health == [(True, "")]

    r.failing(KafkaUnavailable("no broker"), 0.2, round_started=995.0)
    assert (r.state, r.failing_since, r.failing_for()) == ("failing", 995.0, 5.0)
    assert health[-1] == (False, "Kafka unreachable: no broker")
    assert len(lines(caplog)) == 1 and "Kafka unreachable since" in lines(caplog)[0]
    assert "12 events spooled, retrying in 0.2s" in lines(caplog)[0]

    clock.now += 10.0  # within the interval: no line
    r.failing(KafkaUnavailable("no broker"), 0.4, round_started=clock.now)
    r.idle()
    r.delivering()  # a hand-over while failing does not end the outage
    assert r.state == "failing" and len(lines(caplog)) == 1

    clock.now += 30.0
    r.failing(DeliveryFailed("NotLeaderForPartitionError"), 0.8, round_started=clock.now)
    assert "Kafka still failing since" in lines(caplog)[1] and "(45s;" in lines(caplog)[1]
    assert r.failing_since == 995.0  # the outage began with the first failed round

    clock.now += 5.0
    r.recovered(delivered=100)
    assert str(r.state) == "delivering"  # (mypy keeps the narrowing from the first check)
    assert r.failing_since is None and r.failing_for() == 0.0
    assert health[-1] == (True, "")
    assert "Kafka delivering again after 50s; 12 events spooled" in lines(caplog)[2]


def test_progress_counts_what_was_delivered_since_the_last_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="adapter.events.delivery")
    clock, health = ManualClock(), list[tuple[bool, str]]()
    r = report(clock, health)
    r.started()
    clock.now += 29.0
    r.progress(delivered=50)
    assert lines(caplog) == []  # not yet an interval
    clock.now += 1.0
    r.progress(delivered=60)
    assert lines(caplog) == ["delivered 60 events in 30s (2.0/s), 12 spooled, oldest 3.0s old"]
    clock.now += 30.0
    r.progress(delivered=60)  # nothing new: no line
    clock.now += 30.0
    r.progress(delivered=90)
    assert lines(caplog)[-1].startswith("delivered 30 events in 30s (1.0/s)")
    r.idle()
    assert r.state == "idle"
    r.stopped()
    assert str(r.state) == "stopped"
