"""Delays an upstream asks for, as seconds from now, clamped to a maximum.

``Retry-After`` (RFC 9110 section 10.2.3) is delta-seconds or an HTTP-date;
error bodies may carry ``retryAfter`` too. Both are the upstream's word, not the
adapter's: one answer of ``Retry-After: 99999999999999999999`` (or ``86400``)
must not pause every call for a day, nor overflow a ``Duration`` when it becomes
``RetryInfo``. So every server-given delay goes through :func:`clamp_delay`
(``upstreams.<name>.resilience.max_server_delay_seconds``, default 300 s), and
parsing never raises.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re

__all__ = ["DEFAULT_MAX_SERVER_DELAY", "clamp_delay", "delay_in_body", "parse_retry_after"]

#: Seconds; the default of ``resilience.max_server_delay_seconds``.
DEFAULT_MAX_SERVER_DELAY = 300.0

# ASCII digits only: str.isdigit() also accepts "²", which float() refuses.
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z", re.ASCII)
# More digits than this is longer than any clamp (and int() refuses > 4300 digits).
_MAX_DIGITS = 12


def clamp_delay(seconds: float | None, cap: float) -> float | None:
    """``seconds`` within ``[0, cap]``; ``None`` (no delay given) for None or NaN."""
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), cap)


def parse_retry_after(
    value: str | None, *, cap: float = DEFAULT_MAX_SERVER_DELAY, now: dt.datetime | None = None
) -> float | None:
    """``Retry-After`` as seconds from now within ``[0, cap]``; None when absent
    or unreadable. Never raises."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.match(value):
        whole = value.split(".", 1)[0].lstrip("0")
        return cap if len(whole) > _MAX_DIGITS else clamp_delay(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return clamp_delay(seconds, cap)


def delay_in_body(value: object) -> float | None:
    """An error body's ``retryAfter`` (a JSON number, or text as ``Retry-After`` spells
    it) as non-negative seconds, not clamped (callers clamp); None when it is neither.
    Never raises: text goes through :func:`parse_retry_after` (ASCII digits only)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # orjson reads no NaN, no infinity and no integer beyond 64 bits: float() holds it.
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        return parse_retry_after(value, cap=math.inf)  # seconds (or a date) spelled as text
    return None
