"""What lets a stream publish: a replica that lost (or cannot confirm) its
ownership of a stream must not spool another event of it (docs/scaling.md)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["PublishFence", "StreamFenced"]


class PublishFence(Protocol):
    def allows(self) -> bool:
        """Whether this replica may publish the stream's events now."""
        ...

    async def wait_allowed(self) -> None:
        """Returns once :meth:`allows` is true (the stream is then stopped or started by
        the ownership, so this only covers the moments in between)."""
        ...


class StreamFenced(Exception):
    """The stream's ownership lapsed before its events were spooled; nothing was."""
