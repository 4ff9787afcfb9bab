"""Server-given delays: parsed whatever the vendor sends, clamped, never raising;
and the status built from them is always a valid google.rpc.Status."""

from __future__ import annotations

import datetime as dt

import grpc
import httpx
import orjson
import pytest
from google.rpc import error_details_pb2

from adapter.resilience.errors import CircuitOpenError, LocalRateLimitExceeded
from adapter.status.mapping import to_rpc_status
from adapter.upstream.errors import UpstreamStatusError
from adapter.upstream.messages import UpstreamResponse
from adapter.upstream.server_delay import clamp_delay, delay_in_body, parse_retry_after

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)

# (Retry-After header, seconds with the default 300 s clamp)
RETRY_AFTER: list[tuple[str | None, float | None]] = [
    ("120", 120.0),
    ("0", 0.0),
    ("1.5", 1.5),
    ("86400", 300.0),
    ("99999999999999999999", 300.0),
    ("9" * 5000, 300.0),  # int() refuses this many digits
    ("Wed, 25 Nov 2026 12:00:30 GMT", 30.0),
    ("Fri, 31 Dec 9999 23:59:59 GMT", 300.0),
    ("Mon, 01 Jan 0001 00:00:00 GMT", 0.0),
    ("Wed, 25 Nov 2026 11:00:00 GMT", 0.0),
    ("-5", None),
    ("²", None),  # str.isdigit() says yes, float() says no
    ("١٢", None),
    ("nan", None),
    ("inf", None),
    ("soon", None),
    ("Wed, 99 Foo 2026 99:99:99 GMT", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("header", "seconds"), RETRY_AFTER)
def test_retry_after_is_parsed_and_clamped(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


# An error body's retryAfter (REST bodies and GraphQL extensions alike) -> seconds, unclamped.
BODY_DELAYS: list[tuple[object, float | None]] = [
    (12, 12.0),
    (0.5, 0.5),
    (1e300, 1e300),
    ("12", 12.0),
    (" 7 ", 7.0),
    ("1" * 400, float("inf")),  # more digits than any clamp: the clamp decides
    ("²", None),  # str.isdigit() accepts it; float() does not
    ("1e5", None),
    (-3, None),
    (True, None),
    (None, None),
    ([5], None),
]


@pytest.mark.parametrize(("value", "seconds"), BODY_DELAYS)
def test_a_body_delay_is_read_without_raising(value: object, seconds: float | None) -> None:
    assert delay_in_body(value) == seconds


def test_a_configured_clamp_applies() -> None:
    assert parse_retry_after("86400", cap=2.5) == 2.5
    assert clamp_delay(float("inf"), 2.5) == 2.5
    assert clamp_delay(float("nan"), 2.5) is None
    assert clamp_delay(-1.0, 2.5) == 0.0


def _retry_delay(status: object) -> float:
    for holder in status.details:  # type: ignore[attr-defined]
        if holder.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            holder.Unpack(info)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    raise AssertionError("no RetryInfo")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"retry-after": "99999999999999999999"}, b"{}"),
        ({}, orjson.dumps({"error": {"code": "RATE_LIMIT_EXCEEDED", "retryAfter": 1e300}})),
        ({}, orjson.dumps({"error": "rate_limited", "retry_after": "99999999999999999999"})),
    ],
)
def test_status_mapping_clamps_every_server_given_delay(headers: dict[str, str], body: bytes) -> None:
    response = UpstreamResponse(status=429, headers=httpx.Headers(headers), body=body, max_server_delay=42.0)
    status = to_rpc_status(UpstreamStatusError(response, upstream="octospine", route="GET /api/tasks"))
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert _retry_delay(status) == 42.0


@pytest.mark.parametrize("retry_after", [float("inf"), float("nan"), -3.0, 1e300])
def test_local_failures_with_any_delay_still_make_a_status(retry_after: float) -> None:
    for exc in (
        CircuitOpenError(upstream="u", route="r", retry_after=retry_after),
        LocalRateLimitExceeded(upstream="u", route="r", retry_after=retry_after, limit=1, window_seconds=1),
    ):
        status = to_rpc_status(exc)
        assert 0 <= _retry_delay(status) <= 315_576_000_000
