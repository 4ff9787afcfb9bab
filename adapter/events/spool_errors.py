"""Errors of the event spool (see :mod:`adapter.events.spool`)."""

from __future__ import annotations

__all__ = ["SpoolClosed", "SpoolError", "SpoolFull", "SpoolLocked"]


class SpoolError(Exception):
    """Base of spool failures."""


class SpoolFull(SpoolError):
    """The batch would push the spool past ``max_records`` or ``max_bytes``.

    Sources push back when they see it: the webhook answers 503 with
    ``Retry-After``, the WebSocket pauses reads until :meth:`EventSpool.wait_for_room`.
    """

    def __init__(self, *, depth: int, bytes: int, max_records: int, max_bytes: int, wanted: int) -> None:
        super().__init__(
            f"spool full: {depth}/{max_records} records, {bytes}/{max_bytes} bytes; "
            f"batch of {wanted} new records does not fit"
        )
        self.depth = depth
        self.bytes = bytes
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.wanted = wanted


class SpoolClosed(SpoolError):
    """The spool is not started (or already stopped)."""


class SpoolLocked(SpoolError):
    """Another process holds this spool's lock file: two drainers would deliver twice."""
