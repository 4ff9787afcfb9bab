"""A client-side rate limiter that keeps one upstream credential within its quota.

Vendors count requests per credential in fixed windows whose boundaries the
client does not know. A request is counted by the vendor at some instant
between the moment it is sent and the moment its answer arrives, so the limiter
holds each slot from admission until ``window`` after the answer: then no
``window``-long span, wherever it lies, can hold more than ``limit`` arrivals,
whatever the latency. (The cost is a little throughput: latency/window.)

A call that finds no free slot waits, in order of arrival, if a slot frees
early enough to still answer before its deadline (the upstream's typical
latency is kept as a margin), and otherwise fails at once with
:class:`LocalRateLimitExceeded` (``RESOURCE_EXHAUSTED`` + ``RetryInfo`` +
``QuotaFailure``). The limiter also learns from the upstream: a lower
``X-RateLimit-Limit*`` replaces the configured limit, ``X-RateLimit-Remaining*``
below what this process used reveals other clients of the same credential, and a
429's ``Retry-After`` pauses every call until it passes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from adapter.telemetry.repeated_lines import RepeatedLines
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse

from .errors import LocalRateLimitExceeded
from .layer import CallerLayer
from .metrics import RATE_LIMIT_REMAINING, RATE_LIMIT_THROTTLED, meter, observe

__all__ = ["UpstreamRateLimiter"]

logger = logging.getLogger(__name__)

_LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-limit-minute", "ratelimit-limit")
_REMAINING_HEADERS = ("x-ratelimit-remaining", "x-ratelimit-remaining-minute", "ratelimit-remaining")


def _header_int(response: UpstreamResponse, names: Iterable[str]) -> int | None:
    for name in names:
        value = response.headers.get(name)
        if value is not None:
            head = value.split(",", 1)[0].split(";", 1)[0].strip()
            if head.isdigit():
                return int(head)
    return None


class UpstreamRateLimiter(CallerLayer):
    """At most ``limit`` requests per ``window`` seconds to ``inner``."""

    def __init__(
        self,
        inner: UpstreamCaller,
        *,
        limit: int,
        window: float,
        learn_from_headers: bool = True,
        meter_provider: MeterProvider | None = None,
        quota: str = "rest",
    ) -> None:
        """``quota`` names what it counts (``rest``, ``graphql``) in its metrics."""
        super().__init__(inner)
        self.quota = quota
        self._attributes = {"upstream": self.name, "quota": quota}
        self.configured_limit = limit
        self.limit = limit
        #: The credential's whole quota (configured, or learnt lower from headers), and
        #: this process's share of it (replicas: see adapter/coordination/quota_share.py).
        self._whole = limit
        self.share = 1.0
        self.window = window
        self._learn = learn_from_headers
        self._in_flight = 0
        #: When each answered request's slot frees again (non-decreasing).
        self._held: collections.deque[float] = collections.deque()
        #: Slots other clients of the credential use, learned from headers, and until when.
        self._foreign = 0
        self._foreign_until = 0.0
        self._paused_until = 0.0
        # Every call in flight when the vendor starts answering 429 gets one: a line per interval.
        self._pause_lines = RepeatedLines(logger)
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        #: Moving average of the inner call's duration: a slot that frees later than
        #: deadline - this would admit a call that can only time out.
        self._latency = 0.0
        observe(
            meter_provider,
            RATE_LIMIT_REMAINING,
            self._observe,
            kind="gauge",
            unit="{request}",
            description="Requests the client-side quota still allows now",
        )
        self._throttled = meter(meter_provider).create_counter(
            RATE_LIMIT_THROTTLED, unit="{call}", description="Calls that waited for, or were refused, quota"
        )

    def set_share(self, fraction: float) -> None:
        """Uses ``fraction`` (0..1) of the credential's quota from now on: the rest is
        other replicas'. Slots this process holds stay held until they free."""
        self.share = min(1.0, max(0.0, fraction))
        self.limit = math.floor(self._whole * self.share)
        self._wake()

    # accounting ------------------------------------------------------------

    def _used(self, now: float) -> int:
        while self._held and self._held[0] <= now:
            self._held.popleft()
        foreign = self._foreign if now < self._foreign_until else 0
        return self._in_flight + len(self._held) + foreign

    def remaining(self) -> int:
        """Requests that could start now."""
        now = self.now()
        if now < self._paused_until:
            return 0
        return max(0, self.limit - self._used(now))

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        # Metric readers may collect from another thread: read copies, change nothing.
        # (The default event loop's clock is time.monotonic.)
        now = time.monotonic()
        held = sum(1 for t in list(self._held) if t > now)
        foreign = self._foreign if now < self._foreign_until else 0
        value = 0 if now < self._paused_until else max(0, self.limit - self._in_flight - held - foreign)
        yield Observation(value, self._attributes)

    def _free_at(self, position: int, now: float) -> float:
        """Earliest time the ``position``-th (1-based) queued call could start."""
        free_now = self.limit - self._used(now)
        need = position - free_now
        at = now
        if need > 0:
            upcoming = sorted(
                [*self._held, *([self._foreign_until] * self._foreign if now < self._foreign_until else [])]
            )
            # Beyond the known releases, in-flight slots free no sooner than a window from now.
            at = upcoming[need - 1] if need <= len(upcoming) else now + self.window
        return max(at, self._paused_until)

    # admission -------------------------------------------------------------

    async def reserve(self, route: str, *, deadline: float, hold: float) -> None:
        """Counts one request this stack does not send (a WebSocket upgrade, which the
        vendor counts too): waits for a slot like a call, then holds it ``window`` past
        ``hold`` seconds from now (the longest the request can take)."""
        await self._admit(route, deadline)
        self._in_flight -= 1
        self._held.append(self.now() + hold + self.window)
        self._wake()

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        await self._admit(request.route, deadline)
        started = self.now()
        try:
            response = await self.inner.send(request, deadline=deadline)
        finally:
            self._in_flight -= 1
            self._held.append(self.now() + self.window)
            self._wake()
        self._latency += 0.2 * (self.now() - started - self._latency)
        if self._learn:
            self._learn_from(response)
        return response

    async def _admit(self, route: str, deadline: float) -> None:
        now = self.now()
        if not self._waiters and now >= self._paused_until and self._used(now) < self.limit:
            self._in_flight += 1
            return
        # Refusing while the caller still listens beats admitting it too late to answer.
        latest = deadline - (2 * self._latency + 0.05)
        start_at = self._free_at(len(self._waiters) + 1, now)
        if start_at >= latest:
            self._refuse(route, start_at - now)
        self._throttled.add(1, {**self._attributes, "outcome": "waited"})
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake()
        try:
            async with asyncio.timeout_at(latest):
                await waiter
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        if waiter.done() and not waiter.cancelled():
            return  # admitted (_wake counted the slot)
        self._abandon(waiter)
        self._refuse(route, self._free_at(len(self._waiters) + 1, self.now()) - self.now())

    def _abandon(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done() and not waiter.cancelled():
            self._in_flight -= 1  # admitted just as the caller left: give the slot back
            self._wake()
        else:
            waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _refuse(self, route: str, retry_after: float) -> None:
        self._throttled.add(1, {**self._attributes, "outcome": "refused"})
        raise LocalRateLimitExceeded(
            upstream=self.name,
            route=route,
            retry_after=max(retry_after, 0.001),
            limit=self.limit,
            window_seconds=self.window,
        )

    def _wake(self) -> None:
        """Admits queued calls while slots are free; re-arms a timer for the next release."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self.now()
        while self._waiters and now >= self._paused_until and self._used(now) < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)
        if self._waiters:
            at = self._free_at(1, now)
            # When only in-flight calls hold slots, their completion calls _wake.
            if at < now + self.window or now < self._paused_until:
                self._timer = asyncio.get_running_loop().call_at(max(at, now), self._wake)

    # learning --------------------------------------------------------------

    def _learn_from(self, response: UpstreamResponse) -> None:
        now = self.now()
        if response.status == 429:
            pause = response.server_delay()  # clamped: one absurd value must not freeze the vendor
            if pause:
                self._paused_until = max(self._paused_until, now + pause)
                self._pause_lines.log(
                    logging.WARNING,
                    429,
                    "%s answered 429: pausing every %s call for %.1fs",
                    self.name,
                    self.quota,
                    pause,
                )
        limit = _header_int(response, _LIMIT_HEADERS)
        if limit is not None and 0 < limit < self._whole:
            logger.info(
                "%s reports a %s quota of %d per window; using it instead of %d",
                self.name, self.quota, limit, self._whole,
            )  # fmt: skip
            self._whole = limit
            self.limit = math.floor(limit * self.share)
        remaining = _header_int(response, _REMAINING_HEADERS)
        # Replicas (share < 1) account for each other by their shares; what the headers
        # show beyond this process is theirs, not a foreign client's.
        if remaining is not None and limit is not None and self.share >= 1.0:
            # Everything this process sent in the vendor's current window is still
            # counted in _used, so anything beyond it belongs to other clients.
            foreign = (limit - remaining) - (
                self._used(now) - (self._foreign if now < self._foreign_until else 0)
            )
            if foreign > 0:
                self._foreign, self._foreign_until = foreign, now + self.window
        self._wake()
