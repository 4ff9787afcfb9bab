"""A circuit breaker per upstream route.

::

    CLOSED --failure_threshold consecutive failures--> OPEN
    OPEN --open_seconds pass--> HALF_OPEN (up to half_open_probes calls go through)
    HALF_OPEN --half_open_probes successes--> CLOSED
    HALF_OPEN --any failure--> OPEN

While open (or while the probes are taken) calls fail at once with
:class:`CircuitOpenError` (``UNAVAILABLE`` + ``RetryInfo``), costing the upstream
nothing. Failures are what says the route is unwell: no answer at all
(connect errors, resets, the deadline passing while waiting for it) and 5xx
answers. 4xx answers are successes (the route works; the request was wrong);
429s, the adapter's own refusals and credential problems count neither way.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.errors import CallDeadlineExceeded, UpstreamTransportError
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse

from .errors import CircuitOpenError
from .layer import CallerLayer
from .metrics import BREAKER_STATE, observe

__all__ = ["BreakerState", "CircuitBreakerCaller"]

logger = logging.getLogger(__name__)


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(slots=True)
class _Route:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probes_in_flight: int = 0
    probe_successes: int = 0


class CircuitBreakerCaller(CallerLayer):
    """Fails fast on routes that keep failing."""

    def __init__(
        self,
        inner: UpstreamCaller,
        *,
        failure_threshold: int = 5,
        open_seconds: float = 10.0,
        half_open_probes: int = 1,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        super().__init__(inner)
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.half_open_probes = half_open_probes
        self._routes: dict[str, _Route] = {}
        observe(
            meter_provider,
            BREAKER_STATE,
            self._observe,
            kind="gauge",
            unit="",
            description="Circuit breaker state per route: 0 closed, 1 half-open, 2 open",
        )

    def state(self, route: str) -> BreakerState:
        """The route's state now (an open breaker whose time is up reads half-open)."""
        entry = self._routes.get(route)
        if entry is None:
            return BreakerState.CLOSED
        if entry.state is BreakerState.OPEN and self.now() - entry.opened_at >= self.open_seconds:
            entry.state = BreakerState.HALF_OPEN
            entry.probes_in_flight = entry.probe_successes = 0
            logger.info("%s %s: circuit half-open, probing", self.name, route)
        return entry.state

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        for route, entry in list(self._routes.items()):
            yield Observation(int(entry.state), {"upstream": self.name, "route": route})

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        route = request.route
        state = self.state(route)
        entry = self._routes.get(route)
        if entry is None:  # (not setdefault: that built a _Route on every call)
            entry = self._routes[route] = _Route()
        probe = False
        if state is BreakerState.OPEN:
            raise self._open_error(request, entry.opened_at + self.open_seconds - self.now())
        if state is BreakerState.HALF_OPEN:
            if entry.probes_in_flight >= self.half_open_probes:
                # Probes are out; their outcome decides soon. Suggest a short wait.
                raise self._open_error(request, min(1.0, self.open_seconds))
            entry.probes_in_flight += 1
            probe = True
        verdict: bool | None = None
        try:
            response = await self.inner.send(request, deadline=deadline)
            verdict = _verdict_of_status(response.status)
            return response
        except (UpstreamTransportError, CallDeadlineExceeded):
            verdict = False
            raise
        finally:
            if probe:
                entry.probes_in_flight -= 1
            self._record(route, entry, verdict, probe)

    def _record(self, route: str, entry: _Route, ok: bool | None, probe: bool) -> None:
        if ok is None:
            return
        if ok:
            entry.failures = 0
            if probe and entry.state is BreakerState.HALF_OPEN:
                entry.probe_successes += 1
                if entry.probe_successes >= self.half_open_probes:
                    entry.state = BreakerState.CLOSED
                    logger.info("%s %s: circuit closed again", self.name, route)
            return
        entry.failures += 1
        reopen = probe and entry.state is BreakerState.HALF_OPEN
        if reopen or (entry.state is BreakerState.CLOSED and entry.failures >= self.failure_threshold):
            entry.state = BreakerState.OPEN
            entry.opened_at = self.now()
            logger.warning(
                "%s %s: circuit open for %.1fs after %d consecutive failures",
                self.name, route, self.open_seconds, entry.failures,
            )  # fmt: skip

    def _open_error(self, request: UpstreamRequest, retry_after: float) -> CircuitOpenError:
        return CircuitOpenError(upstream=self.name, route=request.route, retry_after=max(retry_after, 0.001))


def _verdict_of_status(status: int) -> bool | None:
    if status == 429:
        return None  # quota, not health
    return status < 500
