"""GraphQL ``errors`` -> gRPC status, as data, beside the HTTP table of
:mod:`adapter.status.mapping` and with the same rich details.

The first error whose ``extensions.code`` is in :data:`GRAPHQL_ERROR_TABLE` decides the
code (upstreams list errors in the order they met them). Deliberate choices, as for HTTP:

- **UNAUTHENTICATED -> INTERNAL**, like a 401: the upstream refused the *adapter's*
  credentials, which the caller cannot fix.
- **GRAPHQL_PARSE_FAILED / GRAPHQL_VALIDATION_FAILED -> INTERNAL**: the document comes from
  the protos, not from the caller; the upstream's schema moved away from it.
- **PERSISTED_QUERY_NOT_FOUND -> INTERNAL**: only seen when sending the text as well did
  not help (the adapter registers its queries by itself).
- **BAD_USER_INPUT -> INVALID_ARGUMENT** with a ``BadRequest`` violation per such error,
  naming ``extensions.field`` (or the error's ``path``).
- An error without a known code: the HTTP status decides when it is not a 2xx (through
  the HTTP table); on a 2xx it is INTERNAL, ``UPSTREAM_GRAPHQL_ERROR``.

Every status carries ``ErrorInfo`` (domain ``mesh-adapter``, a reason, the upstream,
route, the upstream's code and the error's path), ``RetryInfo`` from ``Retry-After`` or
``extensions.retryAfter`` (within the upstream's ``max_server_delay``), ``QuotaFailure``
when rate limited, ``ResourceInfo`` on NOT_FOUND and ``RequestInfo`` with the upstream's
request id.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from adapter.graphql.answer import GraphQLErrorItem
from adapter.graphql.errors import UpstreamGraphQLError
from adapter.status.mapping import ERROR_DOMAIN, build_status, delay_duration, to_rpc_status
from adapter.upstream.errors import UpstreamStatusError
from adapter.upstream.server_delay import clamp_delay

__all__ = ["GRAPHQL_ERROR_TABLE", "graphql_error_status"]

C = grpc.StatusCode

#: ``extensions.code`` -> (gRPC code, ErrorInfo reason).
GRAPHQL_ERROR_TABLE: dict[str, tuple[grpc.StatusCode, str]] = {
    "BAD_USER_INPUT": (C.INVALID_ARGUMENT, "UPSTREAM_BAD_USER_INPUT"),
    "NOT_FOUND": (C.NOT_FOUND, "UPSTREAM_NOT_FOUND"),
    "ALREADY_EXISTS": (C.ALREADY_EXISTS, "UPSTREAM_ALREADY_EXISTS"),
    "CONFLICT": (C.ABORTED, "UPSTREAM_CONFLICT"),
    "FAILED_PRECONDITION": (C.FAILED_PRECONDITION, "UPSTREAM_PRECONDITION_FAILED"),
    "FORBIDDEN": (C.PERMISSION_DENIED, "UPSTREAM_PERMISSION_DENIED"),
    "UNAUTHENTICATED": (C.INTERNAL, "UPSTREAM_CREDENTIALS_REJECTED"),
    "AUTHENTICATION_FAILED": (C.INTERNAL, "UPSTREAM_CREDENTIALS_REJECTED"),
    "RATE_LIMITED": (C.RESOURCE_EXHAUSTED, "UPSTREAM_RATE_LIMITED"),
    "RATE_LIMIT_EXCEEDED": (C.RESOURCE_EXHAUSTED, "UPSTREAM_RATE_LIMITED"),
    "INTERNAL_SERVER_ERROR": (C.INTERNAL, "UPSTREAM_INTERNAL_ERROR"),
    "SERVICE_UNAVAILABLE": (C.UNAVAILABLE, "UPSTREAM_UNAVAILABLE"),
    "TIMEOUT": (C.UNAVAILABLE, "UPSTREAM_GATEWAY_TIMEOUT"),
    "GRAPHQL_PARSE_FAILED": (C.INTERNAL, "UPSTREAM_GRAPHQL_PARSE_FAILED"),
    "GRAPHQL_VALIDATION_FAILED": (C.INTERNAL, "UPSTREAM_GRAPHQL_VALIDATION_FAILED"),
    "BAD_REQUEST": (C.INTERNAL, "UPSTREAM_GRAPHQL_BAD_REQUEST"),
    "PERSISTED_QUERY_NOT_FOUND": (C.INTERNAL, "UPSTREAM_PERSISTED_QUERY_NOT_FOUND"),
    "PERSISTED_QUERY_NOT_SUPPORTED": (C.INTERNAL, "UPSTREAM_PERSISTED_QUERY_NOT_SUPPORTED"),
}

#: An error with no code (or an unknown one) in a 2xx answer.
UNCLASSIFIED = (C.INTERNAL, "UPSTREAM_GRAPHQL_ERROR")


def _deciding(errors: tuple[GraphQLErrorItem, ...]) -> GraphQLErrorItem | None:
    return next((e for e in errors if e.code in GRAPHQL_ERROR_TABLE), None)


def graphql_error_status(exc: UpstreamGraphQLError) -> status_pb2.Status:
    """The status of an operation answered with errors."""
    response = exc.response
    errors = exc.answer.errors
    deciding = _deciding(errors)
    is_success = 200 <= response.status < 300
    if deciding is None and not is_success:
        # Nothing GraphQL-specific to go by: the HTTP status says it (REST table).
        return to_rpc_status(UpstreamStatusError(response, upstream=exc.upstream, route=exc.route))
    code, reason = GRAPHQL_ERROR_TABLE[deciding.code] if deciding is not None else UNCLASSIFIED
    first = deciding or errors[0]

    metadata = {"upstream": exc.upstream, "route": exc.route, "graphql_errors": str(len(errors))}
    if first.code:
        metadata["upstream_code"] = first.code
    if first.path:
        metadata["path"] = first.dotted_path
    if not is_success:
        metadata["http_status"] = str(response.status)
    if response.attempts > 1:
        metadata["attempts"] = str(response.attempts)
    metadata.update(response.extra)
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    ]

    # Both are the upstream's word: within its max_server_delay, as for REST (server_delay.py).
    retry_after = response.server_delay()
    if retry_after is None:
        retry_after = clamp_delay(first.retry_after, response.max_server_delay)
    if retry_after is not None:
        details.append(error_details_pb2.RetryInfo(retry_delay=delay_duration(retry_after)))
    if code == C.RESOURCE_EXHAUSTED:
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=f"upstream:{exc.upstream}", description=first.message or "upstream rate limit exceeded"
        )
        details.append(error_details_pb2.QuotaFailure(violations=[violation]))
    if code == C.INVALID_ARGUMENT:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=e.field or e.dotted_path, description=e.message)
            for e in errors
            if GRAPHQL_ERROR_TABLE.get(e.code, UNCLASSIFIED)[0] == C.INVALID_ARGUMENT
        ]
        details.append(error_details_pb2.BadRequest(field_violations=violations))
    if code == C.NOT_FOUND:
        details.append(
            error_details_pb2.ResourceInfo(
                resource_type=exc.route,
                resource_name=first.dotted_path or exc.route,
                description=first.message,
            )
        )
    if exc.request_id:
        details.append(
            error_details_pb2.RequestInfo(request_id=exc.request_id, serving_data=f"upstream={exc.upstream}")
        )
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    said = f"{first.code}: {first.message}" if first.code else first.message
    return build_status(code, f"{exc.upstream} {exc.route}: GraphQL {said}{more}", details)
