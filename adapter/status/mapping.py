"""The one table from upstream outcomes to gRPC statuses, with rich details.

Follows ``google/rpc/code.proto`` and gRPC proposal A54. Deliberate choices:

- **401 -> INTERNAL**, not UNAUTHENTICATED: the upstream rejected the
  *adapter's* credentials. The caller authenticated fine and cannot fix it;
  UNAUTHENTICATED would send it off re-authenticating for nothing.
- **403 -> PERMISSION_DENIED**: the operation is not allowed to the identity the
  adapter uses for that upstream; retrying will not help.
- **504 / 408 -> UNAVAILABLE**, not DEADLINE_EXCEEDED: an upstream-internal timeout
  is transient; DEADLINE_EXCEEDED is kept for the caller's own deadline.
- **409 -> ALREADY_EXISTS** for standard Create methods, ABORTED otherwise (AIP-193).
- **Malformed success answers -> INTERNAL**: the upstream broke its contract.
- Unlisted 4xx -> FAILED_PRECONDITION, unlisted 5xx -> UNAVAILABLE.

Every status carries ``ErrorInfo`` (domain ``mesh-adapter``, a reason, the
upstream, route and HTTP status), ``RequestInfo`` with the upstream's request id
when known, ``RetryInfo`` from ``Retry-After``, ``BadRequest`` from validation
failures and ``QuotaFailure`` on 429. The table is data; see
tests/status/test_mapping.py for its expectations.

Failures of the resilience layers and credentials (docs/resilience.md):

- **Circuit open -> UNAVAILABLE** with ``RetryInfo`` (when the next probe goes).
- **Client-side quota spent -> RESOURCE_EXHAUSTED** with ``RetryInfo`` and
  ``QuotaFailure``, exactly like the vendor's own 429.
- **A caller's share of a quota spent -> RESOURCE_EXHAUSTED** with ``RetryInfo``
  and a ``QuotaFailure`` whose subject is ``principal:<name>``.
- **No usable credential set for the caller -> PERMISSION_DENIED** (the policy
  binds it to a set the upstream lacks, or to none where one is required).
- **Token endpoint unreachable or 5xx -> UNAVAILABLE** (transient); **token
  refused or login missing -> INTERNAL**: as with a 401, the adapter's
  credentials are wrong and the caller cannot fix them.
- A ``Retry-After`` longer than the caller's remaining deadline fails at once
  with the upstream's status and ``RetryInfo``; ErrorInfo's metadata says why
  retries stopped (``retry_stopped``) and how many attempts were made.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from adapter.auth.errors import TokenEndpointUnavailable
from adapter.resilience.errors import CircuitOpenError, LocalRateLimitExceeded, PrincipalShareExceeded
from adapter.transcoding.errors import BindingError
from adapter.upstream.errors import (
    CallDeadlineExceeded,
    CredentialSetRefused,
    UpstreamError,
    UpstreamStatusError,
)
from adapter.upstream.server_delay import clamp_delay

from .vendor_errors import VendorError, parse_vendor_error

__all__ = ["ERROR_DOMAIN", "HTTP_STATUS_TABLE", "build_status", "delay_duration", "to_rpc_status"]

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "mesh-adapter"
C = grpc.StatusCode

#: HTTP status -> (gRPC code, ErrorInfo reason).
HTTP_STATUS_TABLE: dict[int, tuple[grpc.StatusCode, str]] = {
    400: (C.INVALID_ARGUMENT, "UPSTREAM_BAD_REQUEST"),
    401: (C.INTERNAL, "UPSTREAM_CREDENTIALS_REJECTED"),
    403: (C.PERMISSION_DENIED, "UPSTREAM_PERMISSION_DENIED"),
    404: (C.NOT_FOUND, "UPSTREAM_NOT_FOUND"),
    405: (C.UNIMPLEMENTED, "UPSTREAM_METHOD_NOT_ALLOWED"),
    408: (C.UNAVAILABLE, "UPSTREAM_REQUEST_TIMEOUT"),
    409: (C.ABORTED, "UPSTREAM_CONFLICT"),
    410: (C.NOT_FOUND, "UPSTREAM_GONE"),
    412: (C.FAILED_PRECONDITION, "UPSTREAM_PRECONDITION_FAILED"),
    413: (C.INVALID_ARGUMENT, "UPSTREAM_REQUEST_TOO_LARGE"),
    415: (C.INTERNAL, "UPSTREAM_UNSUPPORTED_MEDIA_TYPE"),
    422: (C.INVALID_ARGUMENT, "UPSTREAM_VALIDATION_FAILED"),
    429: (C.RESOURCE_EXHAUSTED, "UPSTREAM_RATE_LIMITED"),
    499: (C.CANCELLED, "UPSTREAM_CLIENT_CLOSED"),
    500: (C.INTERNAL, "UPSTREAM_INTERNAL_ERROR"),
    501: (C.UNIMPLEMENTED, "UPSTREAM_NOT_IMPLEMENTED"),
    502: (C.UNAVAILABLE, "UPSTREAM_BAD_GATEWAY"),
    503: (C.UNAVAILABLE, "UPSTREAM_UNAVAILABLE"),
    504: (C.UNAVAILABLE, "UPSTREAM_GATEWAY_TIMEOUT"),
}

#: Adapter-side failure reasons -> gRPC code.
REASON_TABLE: dict[str, grpc.StatusCode] = {
    "UPSTREAM_UNREACHABLE": C.UNAVAILABLE,
    "UPSTREAM_CONNECT_FAILED": C.UNAVAILABLE,
    "UPSTREAM_TIMEOUT": C.UNAVAILABLE,
    "UPSTREAM_CONNECTION_RESET": C.UNAVAILABLE,
    "UPSTREAM_RESPONSE_TOO_LARGE": C.RESOURCE_EXHAUSTED,
    "UPSTREAM_REDIRECT_BLOCKED": C.INTERNAL,
    "UPSTREAM_MALFORMED_RESPONSE": C.INTERNAL,
    "UPSTREAM_UNEXPECTED_CONTENT_TYPE": C.INTERNAL,
    "UPSTREAM_CIRCUIT_OPEN": C.UNAVAILABLE,
    "UPSTREAM_QUOTA_EXHAUSTED": C.RESOURCE_EXHAUSTED,
    "PRINCIPAL_QUOTA_EXHAUSTED": C.RESOURCE_EXHAUSTED,
    "CREDENTIAL_SET_UNKNOWN": C.PERMISSION_DENIED,
    "CREDENTIAL_SET_REQUIRED": C.PERMISSION_DENIED,
    "UPSTREAM_TOKEN_ENDPOINT_UNAVAILABLE": C.UNAVAILABLE,
    "UPSTREAM_TOKEN_REJECTED": C.INTERNAL,
    "UPSTREAM_LOGIN_REQUIRED": C.INTERNAL,
    "UPSTREAM_CREDENTIALS_UNAVAILABLE": C.INTERNAL,
}


def _status_for_http(status: int, is_create: bool) -> tuple[grpc.StatusCode, str]:
    if status == 409 and is_create:
        return C.ALREADY_EXISTS, "UPSTREAM_ALREADY_EXISTS"
    if status in HTTP_STATUS_TABLE:
        return HTTP_STATUS_TABLE[status]
    if 300 <= status < 400:
        return C.INTERNAL, "UPSTREAM_UNEXPECTED_REDIRECT"
    if 400 <= status < 500:
        return C.FAILED_PRECONDITION, "UPSTREAM_CLIENT_ERROR"
    return C.UNAVAILABLE, "UPSTREAM_SERVER_ERROR"


def _pack(messages: Iterable[Message]) -> list[any_pb2.Any]:
    packed = []
    for message in messages:
        holder = any_pb2.Any()
        holder.Pack(message)
        packed.append(holder)
    return packed


#: google.protobuf.Duration's range; RetryInfo never comes near it (delays are
#: clamped where they enter), but building a status must not fail.
_MAX_DURATION_SECONDS = 315_576_000_000


def delay_duration(seconds: float) -> duration_pb2.Duration:
    """A delay as a ``Duration`` that always builds (NaN and negatives 0, capped to its range)."""
    if math.isnan(seconds) or seconds < 0:
        seconds = 0.0
    seconds = min(seconds, _MAX_DURATION_SECONDS)
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))


def build_status(code: grpc.StatusCode, message: str, details: list[Message]) -> status_pb2.Status:
    """A ``google.rpc.Status`` with ``details`` packed in order."""
    return status_pb2.Status(code=code.value[0], message=message, details=_pack(details))


def to_rpc_status(
    exc: BaseException, *, is_create: bool = False, body_field: str = "", upstream: str = ""
) -> status_pb2.Status:
    """Status for any failure of a handler. ``body_field`` prefixes upstream
    field violations so they name the caller's request fields (``alert.title``)."""
    if isinstance(exc, BindingError):
        return build_status(
            C.INVALID_ARGUMENT,
            str(exc),
            [
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=exc.field, description=exc.description
                        )
                    ]
                ),
                error_details_pb2.ErrorInfo(
                    reason="INVALID_REQUEST", domain=ERROR_DOMAIN, metadata={"field": exc.field}
                ),
            ],
        )
    if isinstance(exc, CallDeadlineExceeded):
        return build_status(
            C.DEADLINE_EXCEEDED,
            str(exc),
            [
                error_details_pb2.ErrorInfo(
                    reason="DEADLINE_EXCEEDED",
                    domain=ERROR_DOMAIN,
                    metadata={"route": exc.route, "upstream": upstream},
                )
            ],
        )
    if isinstance(exc, UpstreamStatusError):
        return _from_http_status(exc, is_create=is_create, body_field=body_field)
    if isinstance(exc, UpstreamError):
        code = REASON_TABLE.get(exc.reason, C.UNAVAILABLE if exc.retriable else C.INTERNAL)
        details: list[Message] = [
            error_details_pb2.ErrorInfo(
                reason=exc.reason,
                domain=ERROR_DOMAIN,
                metadata={"upstream": exc.upstream, "route": exc.route, **_caller_metadata(exc)},
            )
        ]
        if exc.request_id:
            details.append(error_details_pb2.RequestInfo(request_id=exc.request_id))
        details.extend(_local_failure_details(exc))
        return build_status(code, f"{exc.upstream} {exc.route}: {exc}".strip(), details)
    logger.exception("unexpected failure in a handler", exc_info=exc)
    return build_status(
        C.INTERNAL,
        f"internal error in mesh-adapter ({type(exc).__name__}); see the adapter's log",
        [error_details_pb2.ErrorInfo(reason="ADAPTER_INTERNAL_ERROR", domain=ERROR_DOMAIN)],
    )


def _local_failure_details(exc: UpstreamError) -> list[Message]:
    """RetryInfo / QuotaFailure of failures the adapter decided itself."""
    retry_after: float | None = None
    if isinstance(exc, CircuitOpenError | LocalRateLimitExceeded | TokenEndpointUnavailable):
        retry_after = exc.retry_after
    details: list[Message] = []
    if retry_after is not None:
        details.append(error_details_pb2.RetryInfo(retry_delay=delay_duration(retry_after)))
    if isinstance(exc, PrincipalShareExceeded):
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=f"principal:{exc.principal}",
            description=f"{exc.share:.0%} share of the upstream:{exc.upstream} quota: "
            f"{exc.limit} requests per {exc.window_seconds:g}s",
        )
        details.append(error_details_pb2.QuotaFailure(violations=[violation]))
    elif isinstance(exc, LocalRateLimitExceeded):
        details.append(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=f"upstream:{exc.upstream}",
                        description=f"{exc.limit} requests per {exc.window_seconds:g}s (client-side quota)",
                    )
                ]
            )
        )
    return details


def _caller_metadata(exc: UpstreamError) -> dict[str, str]:
    """Who a per-caller refusal was about (a principal is a name, never a secret)."""
    if isinstance(exc, PrincipalShareExceeded):
        return {"principal": exc.principal, "share": f"{exc.share:g}"}
    if isinstance(exc, CredentialSetRefused):
        return {"principal": exc.principal, "credential_set": exc.credential_set}
    return {}


def _from_http_status(exc: UpstreamStatusError, *, is_create: bool, body_field: str) -> status_pb2.Status:
    response = exc.response
    code, reason = _status_for_http(response.status, is_create)
    vendor: VendorError = parse_vendor_error(response.body, response.content_type)
    metadata = {"upstream": exc.upstream, "route": exc.route, "http_status": str(response.status)}
    if vendor.code:
        metadata["upstream_code"] = vendor.code
    if response.attempts > 1:
        metadata["attempts"] = str(response.attempts)
    metadata.update(response.extra)
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    ]

    retry_after = response.server_delay()
    if retry_after is None:
        retry_after = clamp_delay(vendor.retry_after, response.max_server_delay)
    if retry_after is not None:
        details.append(error_details_pb2.RetryInfo(retry_delay=delay_duration(retry_after)))
    if response.status == 429:
        details.append(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=f"upstream:{exc.upstream}",
                        description=vendor.message or "upstream rate limit exceeded",
                    )
                ]
            )
        )
    if vendor.violations and code == C.INVALID_ARGUMENT:
        prefix = f"{body_field}." if body_field and body_field != "*" else ""
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=prefix + name, description=text)
                    for name, text in vendor.violations
                ]
            )
        )
    if response.status in (404, 410):
        details.append(
            error_details_pb2.ResourceInfo(
                resource_type=exc.route,
                resource_name=exc.path or exc.route,
                description=vendor.message or "not found upstream",
            )
        )
    if exc.request_id:
        details.append(
            error_details_pb2.RequestInfo(request_id=exc.request_id, serving_data=f"upstream={exc.upstream}")
        )
    said = f": {vendor.message}" if vendor.message else ""
    return build_status(code, f"{exc.upstream} {exc.route}: HTTP {response.status}{said}", details)
