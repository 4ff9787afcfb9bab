"""The seam between handlers and the network: anything that can send an
:class:`UpstreamRequest` before a deadline.

:class:`~adapter.upstream.client.UpstreamClient` is the innermost caller; the
resilience layers (retries, rate limiting, circuit breaking, caching) wrap it
with the same signature, so handlers never change when they are added.
"""

from __future__ import annotations

from typing import Protocol

from .messages import UpstreamRequest, UpstreamResponse

__all__ = ["UpstreamCaller"]


class UpstreamCaller(Protocol):
    name: str

    @property
    def default_timeout(self) -> float:
        """Bound of a call whose caller set no deadline, in seconds."""
        ...

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        """One logical call; ``deadline`` is absolute on the event loop's clock."""
        ...

    async def aclose(self) -> None: ...
