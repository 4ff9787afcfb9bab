"""The peer bench's report: how several events runs become the figures the goals are judged on."""

from __future__ import annotations

from bench.peer import report


def run(adapter: float, raw: float, p99: float, order: str = "adapter first") -> dict[str, float | str]:
    return {
        "adapter_rate": adapter,
        "raw_rate": raw,
        "half_rate": adapter / 2,
        "ack_p50_ms": 5.0,
        "ack_p99_ms": p99,
        "raw_ack_p50_ms": 2.0,
        "raw_ack_p99_ms": 6.0,
        "linger_ms": 2,
        "order": order,
    }


def test_events_runs_are_judged_on_their_medians() -> None:
    # One run's stall (36 ms) does not decide the p99 goal; the ratio is each run's own.
    runs = [run(30_000, 60_000, 12.0), run(40_000, 50_000, 36.0, "raw first"), run(36_000, 40_000, 14.0)]
    merged = report.median_events(runs)
    assert merged["ack_p99_ms"] == 14.0
    assert merged["adapter_rate"] == 36_000 and merged["raw_rate"] == 50_000
    # The median of each run's ratio (0.5, 0.8, 0.9), not of the rates (36,000 / 50,000 = 0.72).
    assert merged["rate_ratio"] == 0.8
    assert merged["runs"] == runs
    goals = {what: (value, met) for what, value, _goal, met in report.ratios([], merged)}
    assert goals["events: spool+drainer / raw producer"] == (0.8, True)
    assert goals["events: receipt->ack p99 at 18000/s (ms)"] == (14.0, True)
    assert (
        "median of 3 runs; each run's ratio and p99: 0.50x 12.0 ms (floor 6.0), "
        "0.80x 36.0 ms (floor 6.0, raw first), 0.90x 14.0 ms (floor 6.0)"
    ) in report.events_table(merged)


def test_one_events_run_is_shown_as_it_is() -> None:
    merged = report.median_events([run(30_000, 60_000, 20.0)])
    goals = {what: (value, met) for what, value, _goal, met in report.ratios([], merged)}
    assert goals["events: spool+drainer / raw producer"] == (0.5, False)
    assert goals["events: receipt->ack p99 at 15000/s (ms)"] == (20.0, False)
    assert "median of" not in report.events_table(merged)
