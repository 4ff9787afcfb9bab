"""Hypothesis settings for the fuzz targets, switched by ``MESH_FUZZ_PROFILE``.

- ``ci`` (default, part of ``make test``): each target tries the number of inputs
  it passes to :func:`budget`, the same inputs on every run (``derandomize``): a gate
  that fails only when the code changes. A CI run once failed on an input no earlier
  run had drawn (a test's own float rounding, now an ``@example``); finding new inputs
  is the ``long`` profile's job, not the merge gate's.
- ``long`` (``make fuzz``): ``LONG_FACTOR`` times as many inputs per target, from a
  fresh seed each run.

Loaded by tests/fuzz/conftest.py before any target module is imported, and by
tests/fuzz/atheris_run.py, so ``@budget(...)`` inherits the right profile.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["LONG_FACTOR", "PROFILE", "budget"]

PROFILE = os.environ.get("MESH_FUZZ_PROFILE", "ci")
LONG_FACTOR = int(os.environ.get("MESH_FUZZ_LONG_FACTOR", "100"))

_COMMON = {
    "deadline": None,  # a loaded machine is not a bug
    "print_blob": True,  # a failure prints the line that reproduces it
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("ci", derandomize=True, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("long", **_COMMON)  # type: ignore[arg-type]
if PROFILE not in ("ci", "long"):
    raise ValueError(f"MESH_FUZZ_PROFILE={PROFILE!r}: expected 'ci' or 'long'")
settings.load_profile(PROFILE)


def budget(ci_examples: int) -> settings:
    """``@budget(n)``: n inputs in the ci profile, n * LONG_FACTOR in the long one."""
    return settings(max_examples=ci_examples * (LONG_FACTOR if PROFILE == "long" else 1))
