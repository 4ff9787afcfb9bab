"""Fuzz target: the status mapping (adapter/status/) and server-given delays.

Invariants: whatever an upstream answers (any status, any Retry-After, any body
and content type), building the caller's status never raises, and every
RetryInfo delay is within the upstream's ``max_server_delay``.
"""

from __future__ import annotations

import httpx
import orjson
from google.rpc import error_details_pb2
from hypothesis import given
from hypothesis import strategies as st

from adapter.status.mapping import to_rpc_status
from adapter.status.vendor_errors import parse_vendor_error
from adapter.upstream.errors import UpstreamStatusError
from adapter.upstream.messages import UpstreamResponse
from adapter.upstream.server_delay import parse_retry_after

from .counting import tried
from .profiles import budget
from .strategies import json_values

_RETRY_AFTER = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.integers(-(10**30), 10**30).map(str),
    st.floats().map(str),
    st.sampled_from(["Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "²", "1" * 5000]),
)


def _json_bytes(doc: object) -> bytes:
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:  # deeper than orjson writes: a vendor still could
        return b"[" * 2000 + b"]" * 2000


_ERROR_DOCS = st.fixed_dictionaries({"retryAfter": json_values(), "details": json_values()})
_BODY = st.one_of(
    st.binary(max_size=200),
    json_values().map(_json_bytes),
    st.fixed_dictionaries({"error": st.one_of(json_values(), _ERROR_DOCS)}).map(_json_bytes),
)


@budget(400)
@given(
    st.integers(100, 999),
    _RETRY_AFTER,
    _BODY,
    st.sampled_from(["application/json", "text/html", "", "application/problem+json", "x/\x00"]),
    st.floats(min_value=0.001, max_value=1e6),
)
def test_the_status_is_always_built_and_delays_are_clamped(
    status: int, retry_after: str | None, body: bytes, content_type: str, cap: float
) -> None:
    tried("status.mapping")
    headers = httpx.Headers({"content-type": content_type} if content_type.isprintable() else {})
    if retry_after is not None and retry_after.isprintable() and retry_after.isascii():
        headers["retry-after"] = retry_after
    response = UpstreamResponse(status=status, headers=headers, body=body, max_server_delay=cap)
    rpc_status = to_rpc_status(UpstreamStatusError(response, upstream="u", route="GET /x"), is_create=True)
    assert rpc_status.code != 0
    for holder in rpc_status.details:
        if holder.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            holder.Unpack(info)
            assert 0 <= info.retry_delay.ToTimedelta().total_seconds() <= cap + 1e-6
    parse_vendor_error(body, content_type)
    delay = parse_retry_after(retry_after, cap=cap)
    assert delay is None or 0 <= delay <= cap
