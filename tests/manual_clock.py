"""A clock a test moves by hand, for the parts that take ``clock=`` (a callable
returning seconds, like ``time.monotonic``)."""

from __future__ import annotations


class ManualClock:
    """Returns ``now`` when called; a test sets or adds to it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
