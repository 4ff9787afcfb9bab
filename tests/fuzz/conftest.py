"""Fuzz targets (docs/fuzzing.md): the Hypothesis profile is loaded here, before
any target module; the inputs tried per target are printed at the end."""

from __future__ import annotations

import pytest

from . import profiles
from .counting import RESULTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section(f"fuzz targets (profile {profiles.PROFILE})")
    for target, (count, first, last) in sorted(RESULTS.items()):
        terminalreporter.write_line(f"{target:44s} {int(count):>9d} inputs {last - first:8.1f} s")
