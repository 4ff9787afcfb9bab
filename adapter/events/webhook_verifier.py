"""Verifies webhook deliveries: authentic (see :mod:`adapter.events.webhook_auth`)
and fresh.

Fresh means the body's time field (covered by the signature in signature mode)
is within ``tolerance_seconds`` of now, so replays and far-future stamps are
refused. A body without a time field (the OCTOSPINE guide documents deliveries
as ``{event, data}``) is refused unless ``require_timestamp`` is off: it then
comes back with ``timed=False`` and the receiver protects it from replay by its
delivery id instead (remembered in the spool).

An authentic body that is not a JSON object is not refused: it is returned with
its ``problem`` so the receiver dead-letters and acknowledges it (refusing would
only make the vendor redeliver it forever).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .webhook_auth import DeliveryCheck, WebhookRejectedError

__all__ = ["VerifiedWebhook", "WebhookRejectedError", "WebhookVerifier"]


@dataclass(frozen=True, slots=True)
class VerifiedWebhook:
    """An authentic delivery: fresh, or unreadable (``problem`` says why)."""

    body: dict[str, Any]
    #: Index of the secret or token that matched (0 = newest), for rotation monitoring.
    secret_index: int
    #: Why the authentic body cannot be used ("" = it can).
    problem: str = ""
    #: Whether its time was checked; False = the receiver must check its delivery id.
    timed: bool = True


class WebhookVerifier:
    """Checks a delivery's origin and its time.

    Example::

        verifier = WebhookVerifier(SignatureCheck(scheme, [SecretStr("s1")]), tolerance_seconds=300)
        delivery = verifier.verify(raw_body, request.headers)
    """

    def __init__(
        self,
        check: DeliveryCheck,
        *,
        time_field: str = "timestamp",
        tolerance_seconds: float = 300.0,
        require_timestamp: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        #: How the origin is checked (signature or token).
        self.check = check
        self._time_field = time_field
        self._tolerance = tolerance_seconds
        self._require_timestamp = require_timestamp
        self._clock = clock

    def verify(self, body: bytes, headers: Mapping[str, str]) -> VerifiedWebhook:
        """Raises WebhookRejectedError (401 unauthentic, stale or without a time;
        503 nothing configured); an authentic but unreadable body comes back with
        ``problem`` set."""
        matched = self.check.check(body, headers)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return self._unreadable(matched, f"authentic body is not JSON: {exc}")
        if not isinstance(doc, dict):
            return self._unreadable(matched, "authentic body is not a JSON object")
        stamp = doc.get(self._time_field)
        if stamp is None and not self._require_timestamp:
            return VerifiedWebhook(body=doc, secret_index=matched, timed=False)
        self._check_fresh(stamp)
        return VerifiedWebhook(body=doc, secret_index=matched)

    def _unreadable(self, matched: int, problem: str) -> VerifiedWebhook:
        # Its time cannot be read, so a replay is caught by its delivery id (when allowed).
        return VerifiedWebhook(body={}, secret_index=matched, problem=problem, timed=self._require_timestamp)

    def _check_fresh(self, timestamp: Any) -> None:
        if not isinstance(timestamp, str | int | float) or isinstance(timestamp, bool):
            raise WebhookRejectedError(
                401, "MISSING_TIMESTAMP", f"body has no {self._time_field!r} (string or number)"
            )
        try:
            if isinstance(timestamp, str):
                when = dt.datetime.fromisoformat(timestamp)
                sent = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
            else:
                sent = float(timestamp)
        except (ValueError, OverflowError):
            raise WebhookRejectedError(
                401, "BAD_TIMESTAMP", f"unreadable timestamp {timestamp!r:.40}"
            ) from None
        skew = self._clock() - sent
        if not -self._tolerance <= skew <= self._tolerance:  # also false for NaN
            if skew < -self._tolerance:
                raise WebhookRejectedError(401, "FUTURE_TIMESTAMP", f"sent {-skew:.0f}s in the future")
            raise WebhookRejectedError(
                401, "STALE_TIMESTAMP", f"sent {skew:.0f}s ago (window {self._tolerance:.0f}s)"
            )
