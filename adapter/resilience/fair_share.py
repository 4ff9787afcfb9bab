"""Per-caller shares of a credential's quota, so one noisy caller cannot spend the
whole vendor limit (1000 requests/min) that every caller of the credential shares.

Sits just above :class:`~adapter.resilience.rate_limiter.UpstreamRateLimiter` and
counts the way it does: a request holds a slot of its principal from admission
until ``window`` after its answer. A principal whose policy grants ``max_share``
(0-1] may hold ``max(1, floor(max_share * limit))`` slots at once; one more is
refused at once with :class:`PrincipalShareExceeded` (RESOURCE_EXHAUSTED,
``RetryInfo`` for when its oldest slot frees, ``QuotaFailure`` naming the
principal), never queued behind the others' traffic. Principals with a share of 1
(the default) are not counted.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from adapter.security.identity import current_principal
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse

from .errors import PrincipalShareExceeded
from .layer import CallerLayer
from .rate_limiter import UpstreamRateLimiter

__all__ = ["PrincipalQuotaShares"]


class PrincipalQuotaShares(CallerLayer):
    """``share_of(principal_name)`` -> the principal's largest share (policy)."""

    def __init__(
        self, inner: UpstreamCaller, *, limiter: UpstreamRateLimiter, share_of: Callable[[str], float]
    ) -> None:
        super().__init__(inner)
        self._limiter = limiter
        self._share_of = share_of
        self._in_flight: collections.Counter[str] = collections.Counter()
        #: principal -> when each answered request's slot frees (non-decreasing).
        self._held: dict[str, collections.deque[float]] = {}

    def held(self, principal: str) -> int:
        now = self.now()
        slots = self._held.get(principal)
        while slots and slots[0] <= now:
            slots.popleft()
        return self._in_flight[principal] + (len(slots) if slots else 0)

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        principal = current_principal.get().name
        share = self._share_of(principal)
        if share >= 1.0:
            return await self.inner.send(request, deadline=deadline)
        limit, window = self._limiter.limit, self._limiter.window
        cap = max(1, int(share * limit))
        if self.held(principal) >= cap:
            slots = self._held.get(principal)
            retry_after = (slots[0] - self.now()) if slots else window
            raise PrincipalShareExceeded(
                upstream=self.name,
                route=request.route,
                retry_after=max(retry_after, 0.0),
                limit=cap,
                window_seconds=window,
                principal=principal,
                share=share,
            )
        self._in_flight[principal] += 1
        try:
            return await self.inner.send(request, deadline=deadline)
        finally:
            self._in_flight[principal] -= 1
            if not self._in_flight[principal]:
                del self._in_flight[principal]
            self._held.setdefault(principal, collections.deque()).append(self.now() + window)
