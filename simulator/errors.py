"""Vendor error bodies and the exception handlers raise to produce them.

Handlers raise `ApiError`; one middleware renders it in the vendor's shape:

- OpenFrame (flat): ``{"error": "validation_error", "message": "...", "errors": [{"field",
  "message"}], "request_id": "req_..."}``
- OCTOSPINE (nested): ``{"error": {"code": "VALIDATION_FAILED", "message": "...",
  "details": [{"field", "issue"}], "retryAfter": 30}}``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from simulator.config import Vendor
from simulator.wire import JsonObject, dumps

# Error code per HTTP status, per vendor. Statuses not listed fall back to their class (4xx/5xx).
OPENFRAME_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limit_exceeded",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
OCTOSPINE_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "AUTHENTICATION_FAILED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_FAILED",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
# An access token that was valid once but has expired (OAuth2 tokens, `expired_token` fault).
TOKEN_EXPIRED_CODES: dict[Vendor, str] = {
    "openframe": "token_expired",
    "octospine": "TOKEN_EXPIRED",
}


def error_code(vendor: Vendor, status: int) -> str:
    """The vendor's error code for an HTTP status."""
    table = OPENFRAME_CODES if vendor == "openframe" else OCTOSPINE_CODES
    if status in table:
        return table[status]
    return table[500] if status >= 500 else table[400]


@dataclass(frozen=True)
class FieldIssue:
    """One problem with one request field: ``FieldIssue("severity", "must be one of ...")``."""

    field: str
    issue: str


class ApiError(Exception):
    """An error answer: HTTP status, message, optional field issues and extra headers.

    `code` overrides the vendor's code for the status (e.g. an expired token on a 401);
    `retry_after` (seconds) becomes the `Retry-After` header and, on OCTOSPINE, `retryAfter`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: Sequence[FieldIssue] = (),
        code: str | None = None,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = tuple(details)
        self.code = code
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    @classmethod
    def not_found(cls, kind: str, resource_id: str) -> ApiError:
        """404 for an unknown id."""
        return cls(404, f"{kind} {resource_id!r} not found")

    @classmethod
    def invalid(cls, kind: str, issues: Sequence[FieldIssue]) -> ApiError:
        """422 naming the fields that failed validation."""
        return cls(422, f"Invalid {kind}", details=issues)


def error_body(vendor: Vendor, error: ApiError, request_id: str) -> JsonObject:
    """The vendor's JSON error body for `error`."""
    code = error.code or error_code(vendor, error.status)
    if vendor == "openframe":
        body: JsonObject = {"error": code, "message": error.message}
        if error.details:
            body["errors"] = [{"field": d.field, "message": d.issue} for d in error.details]
        if error.retry_after is not None:
            body["retry_after"] = error.retry_after
        body["request_id"] = request_id
        return body
    inner: JsonObject = {"code": code, "message": error.message}
    if error.details:
        inner["details"] = [{"field": d.field, "issue": d.issue} for d in error.details]
    if error.retry_after is not None:
        inner["retryAfter"] = error.retry_after
    return {"error": inner}


def error_response(vendor: Vendor, error: ApiError, request_id: str) -> web.Response:
    """Renders `error` as a complete aiohttp response (body, Retry-After, extra headers)."""
    response = web.Response(
        status=error.status,
        body=dumps(error_body(vendor, error, request_id)),
        content_type="application/json",
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    response.headers.update(error.headers)
    return response
