"""The error table: every upstream outcome -> gRPC code + detail types."""

from __future__ import annotations

import datetime as dt

import grpc
import httpx
import orjson
import pytest
from google.rpc import error_details_pb2

from adapter.status.mapping import to_rpc_status
from adapter.status.vendor_errors import parse_retry_after, parse_vendor_error
from adapter.transcoding.errors import BindingError
from adapter.upstream.errors import (
    CallDeadlineExceeded,
    UpstreamConnectError,
    UpstreamConnectionReset,
    UpstreamMalformedResponse,
    UpstreamRedirectBlocked,
    UpstreamResponseTooLarge,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from adapter.upstream.messages import UpstreamResponse

C = grpc.StatusCode
OCTO_422 = orjson.dumps(
    {
        "error": {
            "code": "VALIDATION_FAILED",
            "message": "Invalid task",
            "details": [{"field": "name", "issue": "is required"}],
        }
    }
)
OF_422 = orjson.dumps(
    {
        "error": "validation_error",
        "message": "Invalid alert",
        "errors": [{"field": "severity", "message": "must be one of low, medium, high, critical"}],
    }
)
OCTO_429 = orjson.dumps({"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "slow down", "retryAfter": 30}})

# (http status, headers, body, http method) -> (code, reason, detail types)
HTTP_CASES = [
    (400, {}, b"{bad json", "POST", C.INVALID_ARGUMENT, "UPSTREAM_BAD_REQUEST", {"ErrorInfo", "RequestInfo"}),
    (
        401,
        {},
        b'{"error":{"code":"AUTHENTICATION_FAILED"}}',
        "GET",
        C.INTERNAL,
        "UPSTREAM_CREDENTIALS_REJECTED",
        {"ErrorInfo", "RequestInfo"},
    ),
    (403, {}, b"", "GET", C.PERMISSION_DENIED, "UPSTREAM_PERMISSION_DENIED", {"ErrorInfo", "RequestInfo"}),
    (
        404,
        {},
        b'{"error":"not_found","message":"no such alert"}',
        "GET",
        C.NOT_FOUND,
        "UPSTREAM_NOT_FOUND",
        {"ErrorInfo", "ResourceInfo", "RequestInfo"},
    ),
    (405, {}, b"", "GET", C.UNIMPLEMENTED, "UPSTREAM_METHOD_NOT_ALLOWED", {"ErrorInfo", "RequestInfo"}),
    (408, {}, b"", "GET", C.UNAVAILABLE, "UPSTREAM_REQUEST_TIMEOUT", {"ErrorInfo", "RequestInfo"}),
    (409, {}, b"", "POST", C.ALREADY_EXISTS, "UPSTREAM_ALREADY_EXISTS", {"ErrorInfo", "RequestInfo"}),
    (409, {}, b"", "PATCH", C.ABORTED, "UPSTREAM_CONFLICT", {"ErrorInfo", "RequestInfo"}),
    (410, {}, b"", "GET", C.NOT_FOUND, "UPSTREAM_GONE", {"ErrorInfo", "ResourceInfo", "RequestInfo"}),
    (
        412,
        {},
        b"",
        "PUT",
        C.FAILED_PRECONDITION,
        "UPSTREAM_PRECONDITION_FAILED",
        {"ErrorInfo", "RequestInfo"},
    ),
    (413, {}, b"", "POST", C.INVALID_ARGUMENT, "UPSTREAM_REQUEST_TOO_LARGE", {"ErrorInfo", "RequestInfo"}),
    (415, {}, b"", "POST", C.INTERNAL, "UPSTREAM_UNSUPPORTED_MEDIA_TYPE", {"ErrorInfo", "RequestInfo"}),
    (418, {}, b"", "GET", C.FAILED_PRECONDITION, "UPSTREAM_CLIENT_ERROR", {"ErrorInfo", "RequestInfo"}),
    (
        422,
        {},
        OCTO_422,
        "POST",
        C.INVALID_ARGUMENT,
        "UPSTREAM_VALIDATION_FAILED",
        {"ErrorInfo", "BadRequest", "RequestInfo"},
    ),
    (
        422,
        {},
        OF_422,
        "POST",
        C.INVALID_ARGUMENT,
        "UPSTREAM_VALIDATION_FAILED",
        {"ErrorInfo", "BadRequest", "RequestInfo"},
    ),
    (
        429,
        {"retry-after": "7"},
        b"",
        "GET",
        C.RESOURCE_EXHAUSTED,
        "UPSTREAM_RATE_LIMITED",
        {"ErrorInfo", "RetryInfo", "QuotaFailure", "RequestInfo"},
    ),
    (
        429,
        {},
        OCTO_429,
        "GET",
        C.RESOURCE_EXHAUSTED,
        "UPSTREAM_RATE_LIMITED",
        {"ErrorInfo", "RetryInfo", "QuotaFailure", "RequestInfo"},
    ),
    (499, {}, b"", "GET", C.CANCELLED, "UPSTREAM_CLIENT_CLOSED", {"ErrorInfo", "RequestInfo"}),
    (
        500,
        {},
        b"<html><body>Oops</body></html>",
        "GET",
        C.INTERNAL,
        "UPSTREAM_INTERNAL_ERROR",
        {"ErrorInfo", "RequestInfo"},
    ),
    (501, {}, b"", "GET", C.UNIMPLEMENTED, "UPSTREAM_NOT_IMPLEMENTED", {"ErrorInfo", "RequestInfo"}),
    (502, {}, b"", "GET", C.UNAVAILABLE, "UPSTREAM_BAD_GATEWAY", {"ErrorInfo", "RequestInfo"}),
    (
        503,
        {"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"},
        b"",
        "GET",
        C.UNAVAILABLE,
        "UPSTREAM_UNAVAILABLE",
        {"ErrorInfo", "RetryInfo", "RequestInfo"},
    ),
    (504, {}, b"", "GET", C.UNAVAILABLE, "UPSTREAM_GATEWAY_TIMEOUT", {"ErrorInfo", "RequestInfo"}),
    (507, {}, b"", "GET", C.UNAVAILABLE, "UPSTREAM_SERVER_ERROR", {"ErrorInfo", "RequestInfo"}),
    (304, {}, b"", "GET", C.INTERNAL, "UPSTREAM_UNEXPECTED_REDIRECT", {"ErrorInfo", "RequestInfo"}),
]


def _details(status) -> dict[str, object]:  # type: ignore[no-untyped-def]
    out: dict[str, object] = {}
    for holder in status.details:
        name = holder.type_url.rsplit(".", 1)[-1]
        message = getattr(error_details_pb2, name)()
        holder.Unpack(message)
        out[name] = message
    return out


@pytest.mark.parametrize(
    ("http", "headers", "body", "method", "code", "reason", "detail_types"),
    HTTP_CASES,
    ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(HTTP_CASES)],
)
def test_http_outcomes(http, headers, body, method, code, reason, detail_types) -> None:  # type: ignore[no-untyped-def]
    response = UpstreamResponse(
        status=http,
        headers=httpx.Headers({"x-request-id": "req_9", **headers}),
        body=body,
        request_id="req_9",
    )
    status = to_rpc_status(
        UpstreamStatusError(response, upstream="octospine", route=f"{method} /x"),
        is_create=method == "POST",
        body_field="task",
    )
    assert status.code == code.value[0]
    details = _details(status)
    assert set(details) == detail_types
    info = details["ErrorInfo"]
    assert info.reason == reason and info.domain == "mesh-adapter"
    assert info.metadata["http_status"] == str(http) and info.metadata["upstream"] == "octospine"
    assert details["RequestInfo"].request_id == "req_9"
    assert str(http) in status.message


def test_validation_violations_name_request_fields() -> None:
    response = UpstreamResponse(status=422, headers=httpx.Headers(), body=OF_422)
    details = _details(
        to_rpc_status(
            UpstreamStatusError(response, upstream="openframe", route="POST /v1/alerts"),
            is_create=True,
            body_field="alert",
        )
    )
    [violation] = details["BadRequest"].field_violations
    assert violation.field == "alert.severity"
    assert "must be one of" in violation.description
    assert details["ErrorInfo"].metadata["upstream_code"] == "validation_error"


def test_retry_info_from_header_and_body() -> None:
    header = UpstreamResponse(status=429, headers=httpx.Headers({"retry-after": "7"}), body=b"")
    body = UpstreamResponse(status=429, headers=httpx.Headers(), body=OCTO_429)
    for response, seconds in ((header, 7), (body, 30)):
        details = _details(to_rpc_status(UpstreamStatusError(response, upstream="o", route="GET /x")))
        assert details["RetryInfo"].retry_delay.seconds == seconds


EXC_CASES = [
    (BindingError("alert.id", "is required"), C.INVALID_ARGUMENT, {"BadRequest", "ErrorInfo"}),
    (CallDeadlineExceeded("GET /x", 0.5), C.DEADLINE_EXCEEDED, {"ErrorInfo"}),
    (UpstreamConnectError("refused", upstream="o", route="GET /x"), C.UNAVAILABLE, {"ErrorInfo"}),
    (UpstreamTimeoutError("connect", upstream="o", route="GET /x"), C.UNAVAILABLE, {"ErrorInfo"}),
    (UpstreamConnectionReset("reset", upstream="o", route="GET /x"), C.UNAVAILABLE, {"ErrorInfo"}),
    (UpstreamResponseTooLarge("big", upstream="o", route="GET /x"), C.RESOURCE_EXHAUSTED, {"ErrorInfo"}),
    (UpstreamRedirectBlocked("evil.example", upstream="o", route="GET /x"), C.INTERNAL, {"ErrorInfo"}),
    (
        UpstreamMalformedResponse("bad json", upstream="o", route="GET /x", request_id="r1"),
        C.INTERNAL,
        {"ErrorInfo", "RequestInfo"},
    ),
    (
        UpstreamMalformedResponse(
            "html", reason="UPSTREAM_UNEXPECTED_CONTENT_TYPE", upstream="o", route="GET /x"
        ),
        C.INTERNAL,
        {"ErrorInfo"},
    ),
    (RuntimeError("bug"), C.INTERNAL, {"ErrorInfo"}),
]


@pytest.mark.parametrize(
    ("exc", "code", "detail_types"), EXC_CASES, ids=[type(c[0]).__name__ for c in EXC_CASES]
)
def test_adapter_side_outcomes(exc, code, detail_types) -> None:  # type: ignore[no-untyped-def]
    status = to_rpc_status(exc)
    assert status.code == code.value[0]
    assert set(_details(status)) == detail_types


VENDOR_BODIES = [
    (OCTO_422, "VALIDATION_FAILED", "Invalid task", [("name", "is required")], None),
    (
        OF_422,
        "validation_error",
        "Invalid alert",
        [("severity", "must be one of low, medium, high, critical")],
        None,
    ),
    (OCTO_429, "RATE_LIMIT_EXCEEDED", "slow down", [], 30.0),
    (
        b'{"detail": [{"loc": ["body", "title"], "msg": "field required"}]}',
        "",
        "",
        [("title", "field required")],
        None,
    ),
    (
        b'{"errors": {"title": ["can\'t be blank"]}, "message": "nope"}',
        "",
        "nope",
        [("title", "can't be blank")],
        None,
    ),
    (b"<html><h1>502 Bad Gateway</h1></html>", "", "502 Bad Gateway", [], None),
    (b"", "", "", [], None),
]


@pytest.mark.parametrize(("body", "code", "message", "violations", "retry"), VENDOR_BODIES)
def test_vendor_error_shapes(body, code, message, violations, retry) -> None:  # type: ignore[no-untyped-def]
    parsed = parse_vendor_error(body, "text/html" if body.startswith(b"<") else "application/json")
    assert (parsed.code, parsed.message, parsed.violations, parsed.retry_after) == (
        code,
        message,
        violations,
        retry,
    )


def test_retry_after_forms() -> None:
    now = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120", now=now) == 120
    assert parse_retry_after("Wed, 25 Nov 2026 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None
