"""Inputs each target tried and the time it took, printed after the run.

Each test's counts travel in its report (a user property): under pytest-xdist the
tests run in worker processes and the summary is printed by the controller, which
shares no module state with them and never loads tests/fuzz/conftest.py, so
tests/conftest.py calls :func:`write_summary`."""

from __future__ import annotations

import collections
import time
from typing import Any

import pytest

__all__ = ["RESULTS", "carry", "tried", "write_summary"]

#: target -> [inputs, first seen (monotonic), last seen (monotonic)]
RESULTS: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])

_PROPERTY = "fuzz_inputs"


def tried(target: str) -> None:
    entry = RESULTS[target]
    now = time.monotonic()
    if not entry[0]:
        entry[1] = now
    entry[0] += 1
    entry[2] = now


def carry(item: pytest.Item, profile: str) -> None:
    """Moves what the test just tried into its report."""
    targets = {target: [count, last - first] for target, (count, first, last) in RESULTS.items()}
    RESULTS.clear()
    if targets:
        item.user_properties.append((_PROPERTY, {"profile": profile, "targets": targets}))


def write_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per target: inputs tried and seconds spent, over every test's report."""
    totals: dict[str, list[float]] = {}
    profile = ""
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", "") != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name != _PROPERTY:
                    continue
                carried: dict[str, Any] = value
                profile = carried["profile"]
                for target, (count, seconds) in carried["targets"].items():
                    total = totals.setdefault(target, [0, 0.0])
                    total[0] += count
                    total[1] += seconds
    if not totals:
        return
    terminalreporter.section(f"fuzz targets (profile {profile})")
    for target, (count, seconds) in sorted(totals.items()):
        terminalreporter.write_line(f"{target:44s} {int(count):>9d} inputs {seconds:8.1f} s")
