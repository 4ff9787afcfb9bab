"""An upstream caller that answers at once: what the quota tests' rate limiters wrap."""

from __future__ import annotations

import httpx

from adapter.upstream.messages import UpstreamRequest, UpstreamResponse

__all__ = ["Instant"]


class Instant:
    name = "openframe"
    default_timeout = 5.0

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        return UpstreamResponse(status=200, headers=httpx.Headers(), body=b"{}")

    async def aclose(self) -> None:
        pass
