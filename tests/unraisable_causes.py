"""Names what an "unraisable exception" failure was about in the run's one-line summary.

pytest turns a warning raised in ``__del__`` (an unclosed connection, a coroutine
never awaited) into a failure of whichever test was running when the garbage
collector found it, summed up as "multiple unraisable exception warnings (2
sub-exceptions)". CI shows only the summary's tail, so that line has to say which
objects they were; without it such a failure cannot be traced.
"""

from __future__ import annotations

import pytest

_LIMIT = 240  # characters per cause: object reprs can be long


def unraisable_causes(exc: BaseException) -> list[str]:
    """One line per unraisable exception warning in ``exc`` (alone or in a group)."""
    members = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
    causes: list[str] = []
    for member in members:
        if not isinstance(member, pytest.PytestUnraisableExceptionWarning):
            continue
        where = str(member).strip().splitlines()[0] if str(member).strip() else "?"
        cause = member.__cause__
        what = f"{type(cause).__name__}: {cause}" if cause is not None else "no cause"
        causes.append(f"{where[:_LIMIT]} ({what[:_LIMIT]})")
    return causes


def name_unraisable_causes(report: pytest.TestReport, call: pytest.CallInfo[None]) -> None:
    """Appends the causes to the report's crash line (the summary's "FAILED ... - ")."""
    if not report.failed or call.excinfo is None:
        return
    causes = unraisable_causes(call.excinfo.value)
    crash = getattr(report.longrepr, "reprcrash", None)
    if causes and crash is not None:
        crash.message = f"{crash.message}: " + "; ".join(causes)
