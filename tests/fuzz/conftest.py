"""Fuzz targets (docs/fuzzing.md): the Hypothesis profile is loaded here, before
any target module; the inputs tried per target are printed at the end
(tests/fuzz/counting.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import profiles
from .counting import carry


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        carry(item, profiles.PROFILE)
