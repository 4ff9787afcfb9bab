"""Retries of idempotent calls on transient failures, with jittered exponential
backoff, ``Retry-After``, the caller's deadline and a retry budget.

What is retried:

- only requests marked ``idempotent`` (the protos' declaration: GET/PUT/DELETE by
  default, a POST only with an idempotency key, which travels as
  ``Idempotency-Key`` so the upstream processes it once); a connect failure is
  retried for any request, because nothing was sent;
- only transient outcomes: connect errors, resets, the adapter's connect
  timeout, and the statuses in ``retryable_statuses`` (429, 502, 503, 504).

When to stop: after ``max_attempts``; when the budget is spent; when the wait
(``Retry-After`` when the upstream sent one, else the backoff) would end at or
after the deadline. Then the last answer is returned as it came (with its
``Retry-After``, which becomes ``RetryInfo``) at once, without waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opentelemetry.metrics import MeterProvider

from adapter.telemetry.repeated_lines import RepeatedLines
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.errors import UpstreamConnectError, UpstreamError
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse

from .backoff import full_jitter
from .layer import CallerLayer
from .metrics import RETRIES, RETRY_STOPPED, meter
from .retry_budget import RetryBudget

__all__ = ["RetryPolicy", "RetryingCaller"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    retryable_statuses: frozenset[int] = frozenset({429, 502, 503, 504})

    def backoff(self, retry: int, rng: random.Random) -> float:
        """ "Full jitter" before retry number ``retry`` (1-based): uniform in
        [0, min(max, initial * multiplier**(retry-1))], so synchronised callers
        spread out instead of returning together."""
        return full_jitter(
            retry, initial=self.initial_backoff, maximum=self.max_backoff, multiplier=self.multiplier, rng=rng
        )


class RetryingCaller(CallerLayer):
    """Retries what :class:`RetryPolicy` allows, within the budget and the deadline."""

    def __init__(
        self,
        inner: UpstreamCaller,
        *,
        policy: RetryPolicy,
        budget: RetryBudget,
        meter_provider: MeterProvider | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(inner)
        self.policy = policy
        self.budget = budget
        self._rng = rng or random.Random()
        self._sleep = sleep
        m = meter(meter_provider)
        self._retries = m.create_counter(RETRIES, unit="{retry}", description="Upstream attempts repeated")
        self._stopped = m.create_counter(
            RETRY_STOPPED, unit="{call}", description="Calls whose retries stopped before success"
        )
        # In an outage every call stops retrying alike: a line per route and reason per interval
        # (with a count), as the failed calls' own lines; the counter above has every one.
        self._stopped_lines = RepeatedLines(logger)

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        self.budget.record_call()
        attempt = 1
        while True:
            response: UpstreamResponse | None = None
            failure: UpstreamError | None = None
            try:
                response = await self.inner.send(request, deadline=deadline)
            except UpstreamError as exc:
                if not (exc.retriable and (request.idempotent or isinstance(exc, UpstreamConnectError))):
                    raise
                failure = exc
            if response is not None and (
                response.status not in self.policy.retryable_statuses or not request.idempotent
            ):
                return _with_attempts(response, attempt)
            cause = f"http_{response.status}" if response is not None else (failure.reason if failure else "")
            asked, delay = self._plan(attempt, response, failure)
            reason = self._why_stop(attempt, asked, delay, deadline)
            if reason is not None:
                self._stopped.add(1, {"upstream": self.name, "route": request.route, "reason": reason})
                self._stopped_lines.log(
                    logging.INFO,
                    (request.route, reason),
                    "%s %s: not retrying after attempt %d (%s): %s",
                    self.name, request.route, attempt, cause, reason,
                )  # fmt: skip
                if failure is not None:
                    raise failure
                assert response is not None
                return _with_attempts(response, attempt, stopped=reason)
            self._retries.add(1, {"upstream": self.name, "route": request.route, "cause": cause})
            logger.debug("%s %s: attempt %d failed (%s); retrying in %.3fs", self.name, request.route,
                         attempt, cause, delay)  # fmt: skip
            await self._sleep(delay)
            attempt += 1

    def _plan(
        self, attempt: int, response: UpstreamResponse | None, failure: UpstreamError | None
    ) -> tuple[bool, float]:
        """(whether the upstream asked for the wait, the wait before the next attempt)."""
        retry_after: float | None = None
        if response is not None:
            retry_after = response.server_delay()
        elif failure is not None:
            # Failures that know when to come back (a token endpoint's Retry-After).
            asked = getattr(failure, "retry_after", None)
            retry_after = float(asked) if isinstance(asked, int | float) else None
        if retry_after is not None:
            return True, retry_after
        return False, self.policy.backoff(attempt, self._rng)

    def _why_stop(self, attempt: int, asked: bool, delay: float, deadline: float) -> str | None:
        if attempt >= self.policy.max_attempts:
            return "max_attempts"
        if self.now() + delay >= deadline:
            return "retry_after_exceeds_deadline" if asked else "backoff_exceeds_deadline"
        # Last, so a retry that could not happen anyway does not spend budget.
        if not self.budget.try_spend():
            return "retry_budget_exhausted"
        return None


def _with_attempts(response: UpstreamResponse, attempts: int, *, stopped: str = "") -> UpstreamResponse:
    # The client counts its own 401-refresh re-attempt; retries add to it.
    total = response.attempts + attempts - 1
    if total == response.attempts and not stopped:
        return response
    extra = {**response.extra, "retry_stopped": stopped} if stopped else response.extra
    return dataclasses.replace(response, attempts=total, extra=extra)
