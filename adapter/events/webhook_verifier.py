"""Verifies OCTOSPINE webhook deliveries: HMAC-SHA256 signature over the raw
body, freshness of the signed timestamp, several secrets during a rotation.

``x-octospine-signature: sha256=<hex>`` (a bare ``<hex>`` is accepted too). The
signature covers the raw bytes, which include the body's ``timestamp``, so the
replay window is checked on signed data. No library implements this vendor's
scheme; ``hmac.compare_digest`` gives the constant-time comparison.

A header that is not plain ASCII hex is a bad signature (401), whatever bytes it
holds. An authentic body that is not a JSON object is not refused: it is returned
with its ``problem`` so the receiver dead-letters and acknowledges it (refusing
would only make the vendor redeliver it forever).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import SecretStr

__all__ = ["VerifiedWebhook", "WebhookRejectedError", "WebhookVerifier"]

SIGNATURE_HEADER = "x-octospine-signature"
#: Several signatures during a rotation, each "sha256=" + 64 hex digits.
_MAX_HEADER = 1024


class WebhookRejectedError(Exception):
    """A delivery the receiver refuses; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class VerifiedWebhook:
    """An authentic delivery: fresh, or unreadable (``problem`` says why)."""

    body: dict[str, Any]
    #: Index of the secret that matched (0 = newest), for rotation monitoring.
    secret_index: int
    #: Why the authentic body cannot be used ("" = it can).
    problem: str = ""


class WebhookVerifier:
    """Checks signature and timestamp of a webhook body.

    Example::

        verifier = WebhookVerifier([SecretStr("s1")], tolerance_seconds=300)
        delivery = verifier.verify(raw_body, request.headers.get("x-octospine-signature"))
    """

    def __init__(
        self,
        secrets: Sequence[SecretStr],
        *,
        tolerance_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = [s.get_secret_value().encode() for s in secrets]
        self._tolerance = tolerance_seconds
        self._clock = clock

    def verify(self, body: bytes, signature_header: str | None) -> VerifiedWebhook:
        """Raises WebhookRejectedError (401 bad/missing signature or stale
        timestamp, 503 no secret configured); an authentic but unreadable body comes
        back with ``problem`` set."""
        if not self._keys:
            raise WebhookRejectedError(503, "NO_SECRET_CONFIGURED", "no webhook secret is configured")
        if not signature_header:
            raise WebhookRejectedError(401, "MISSING_SIGNATURE", f"no {SIGNATURE_HEADER} header")
        if not signature_header.isascii() or len(signature_header) > _MAX_HEADER:
            raise WebhookRejectedError(401, "BAD_SIGNATURE", "signature header is not ASCII hex")
        offered = [_hex_of(part) for part in signature_header.split(",") if part.strip()]
        matched = self._match(body, offered)
        if matched is None:
            raise WebhookRejectedError(401, "BAD_SIGNATURE", "signature does not match any active secret")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return VerifiedWebhook(body={}, secret_index=matched, problem=f"signed body is not JSON: {exc}")
        if not isinstance(doc, dict):
            return VerifiedWebhook(body={}, secret_index=matched, problem="signed body is not a JSON object")
        self._check_fresh(doc.get("timestamp"))
        return VerifiedWebhook(body=doc, secret_index=matched)

    def _match(self, body: bytes, offered: list[bytes]) -> int | None:
        matched: int | None = None
        for index, key in enumerate(self._keys):
            expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
            for candidate in offered:
                # Compare against every secret and candidate: timing reveals nothing.
                if hmac.compare_digest(expected, candidate) and matched is None:
                    matched = index
        return matched

    def _check_fresh(self, timestamp: Any) -> None:
        if not isinstance(timestamp, str | int | float) or isinstance(timestamp, bool):
            raise WebhookRejectedError(401, "MISSING_TIMESTAMP", "signed body has no timestamp")
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


def _hex_of(part: str) -> bytes:
    part = part.strip()
    if part.lower().startswith("sha256="):
        part = part[7:]
    return part.lower().encode()
