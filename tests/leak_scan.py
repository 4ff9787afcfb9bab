"""``make test ARGS="-p tests.leak_scan"``: finds the test that leaks.

Warnings that objects raise when the garbage collector frees them (an unclosed
socket or Kafka connection, a coroutine never awaited) fail whichever test is
running when a full collection happens, often a long, allocation-heavy one far
from the test that made the garbage. With this plugin every test ends with a
full collection, and a warning raised there is an error at that test's teardown.
It about doubles the suite's time (a collection per test), so it is opt-in.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_garbage_that_warns() -> Iterator[None]:
    yield
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    if caught:
        pytest.fail(
            "left garbage that warns when freed: "
            + "; ".join(f"{w.category.__name__}: {str(w.message)[:300]}" for w in caught),
            pytrace=False,
        )
