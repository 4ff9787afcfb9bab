"""The GraphQL error table: every ``errors`` answer -> gRPC code, reason and detail types."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import orjson
import pytest
from google.rpc import error_details_pb2, status_pb2

from adapter.graphql.answer import read_answer, read_error_answer
from adapter.graphql.errors import UpstreamGraphQLError
from adapter.status.graphql_errors import GRAPHQL_ERROR_TABLE, graphql_error_status
from adapter.upstream.messages import UpstreamResponse

C = grpc.StatusCode
ROUTE = "GRAPHQL query PipelineOverview"


def err(code: str | None, message: str = "it failed", **more: Any) -> dict[str, Any]:
    extensions = {"code": code} if code is not None else {}
    extensions.update(more.pop("extensions", {}))
    return {"message": message, "extensions": extensions, **more}


#: extensions.code -> (gRPC code, ErrorInfo reason): the expected table, as data.
EXPECTED_TABLE = {
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

_ALWAYS = {"ErrorInfo", "RequestInfo"}
# (http status, headers, errors) -> (code, reason, detail types beyond ErrorInfo + RequestInfo)
CASES: list[tuple[int, dict[str, str], list[Any], grpc.StatusCode, str, set[str]]] = [
    *[
        (200, {}, [err(code)], grpc_code, reason, set())
        for code, (grpc_code, reason) in EXPECTED_TABLE.items()
        if grpc_code not in (C.INVALID_ARGUMENT, C.NOT_FOUND, C.RESOURCE_EXHAUSTED)
    ],
    (200, {}, [err("BAD_USER_INPUT", extensions={"field": "status"})], C.INVALID_ARGUMENT,
     "UPSTREAM_BAD_USER_INPUT", {"BadRequest"}),
    (200, {}, [err("NOT_FOUND", path=["pipeline"])], C.NOT_FOUND, "UPSTREAM_NOT_FOUND", {"ResourceInfo"}),
    (200, {}, [err("RATE_LIMITED", extensions={"retryAfter": 12})], C.RESOURCE_EXHAUSTED,
     "UPSTREAM_RATE_LIMITED", {"RetryInfo", "QuotaFailure"}),
    (429, {"retry-after": "30"}, [err("RATE_LIMITED")], C.RESOURCE_EXHAUSTED, "UPSTREAM_RATE_LIMITED",
     {"RetryInfo", "QuotaFailure"}),
    # Lower-case and Spring's `classification` are read too.
    (200, {}, [err("not_found")], C.NOT_FOUND, "UPSTREAM_NOT_FOUND", {"ResourceInfo"}),
    (200, {}, [{"message": "nope", "extensions": {"classification": "NOT_FOUND"}}], C.NOT_FOUND,
     "UPSTREAM_NOT_FOUND", {"ResourceInfo"}),
    # No usable code: INTERNAL on a 2xx, the HTTP table otherwise.
    (200, {}, [err(None)], C.INTERNAL, "UPSTREAM_GRAPHQL_ERROR", set()),
    (200, {}, [err("SOMETHING_NEW")], C.INTERNAL, "UPSTREAM_GRAPHQL_ERROR", set()),
    (200, {}, ["a bare string"], C.INTERNAL, "UPSTREAM_GRAPHQL_ERROR", set()),
    (503, {"retry-after": "5"}, [err(None)], C.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", {"RetryInfo"}),
    (401, {}, [err("SOMETHING_NEW")], C.INTERNAL, "UPSTREAM_CREDENTIALS_REJECTED", set()),
    (400, {}, [err(None)], C.INVALID_ARGUMENT, "UPSTREAM_BAD_REQUEST", set()),
    # The first error with a known code decides, whatever comes before it.
    (200, {}, [err("SOMETHING_NEW"), err("FORBIDDEN"), err("NOT_FOUND")], C.PERMISSION_DENIED,
     "UPSTREAM_PERMISSION_DENIED", set()),
]  # fmt: skip


def _status(status: int, errors: list[Any], headers: dict[str, str] | None = None) -> status_pb2.Status:
    body = orjson.dumps({"errors": errors, "data": None})
    response = UpstreamResponse(
        status=status,
        headers=httpx.Headers({"content-type": "application/json", **(headers or {})}),
        body=body,
        request_id="req_1",
    )
    answer = read_answer(body, "application/json") if status == 200 else read_error_answer(body)
    assert answer is not None
    return graphql_error_status(UpstreamGraphQLError(answer, response, upstream="octospine", route=ROUTE))


def _details(status: status_pb2.Status) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for holder in status.details:
        name = holder.type_url.rsplit(".", 1)[-1]
        message = getattr(error_details_pb2, name)()
        holder.Unpack(message)
        out[name] = message
    return out


def test_the_table_is_the_expected_one() -> None:
    assert GRAPHQL_ERROR_TABLE == EXPECTED_TABLE


@pytest.mark.parametrize(("http", "headers", "errors", "code", "reason", "extra"), CASES)
def test_graphql_errors_map_through_the_table(
    http: int, headers: dict[str, str], errors: list[Any], code: grpc.StatusCode, reason: str, extra: set[str]
) -> None:
    status = _status(http, errors, headers)
    details = _details(status)
    assert status.code == code.value[0], status.message
    assert details["ErrorInfo"].reason == reason
    assert details["ErrorInfo"].domain == "mesh-adapter"
    assert set(details) == _ALWAYS | extra
    assert details["RequestInfo"].request_id == "req_1"
    assert status.message.startswith("octospine ")


def test_bad_user_input_names_the_fields_from_extensions_or_path() -> None:
    status = _status(
        200,
        [
            err("BAD_USER_INPUT", "status FAILED is not allowed", extensions={"field": "status"}),
            err("NOT_FOUND", "irrelevant to the caller's input"),
            err("BAD_USER_INPUT", "first is out of range", path=["tasks", 0, "name"]),
        ],
    )
    assert status.code == C.INVALID_ARGUMENT.value[0]
    violations = [(v.field, v.description) for v in _details(status)["BadRequest"].field_violations]
    assert violations == [
        ("status", "status FAILED is not allowed"),
        ("tasks[0].name", "first is out of range"),
    ]
    assert "(and 2 more errors)" in status.message


def test_error_info_carries_path_code_count_and_http_status() -> None:
    status = _status(
        503,
        [err("SERVICE_UNAVAILABLE", path=["pipeline", "automations"]), err(None)],
        {"retry-after": "3"},
    )
    info = _details(status)["ErrorInfo"].metadata
    assert dict(info) == {
        "upstream": "octospine",
        "route": ROUTE,
        "graphql_errors": "2",
        "upstream_code": "SERVICE_UNAVAILABLE",
        "path": "pipeline.automations",
        "http_status": "503",
    }
    assert _details(status)["RetryInfo"].retry_delay.seconds == 3


#: extensions.retryAfter (and a Retry-After header) -> RetryInfo seconds, the upstream's
#: max_server_delay 60. The upstream's word is clamped as for REST (server_delay.py), and an
#: unreadable one gives no RetryInfo: before, "²" and numbers past a Duration's range raised
#: out of the mapping (found by the graphql.answer fuzz target).
RETRY_CASES: list[tuple[dict[str, str], object, float | None]] = [
    ({}, 12, 12.0),
    ({}, 12.5, 12.5),
    ({}, "12", 12.0),
    ({}, " 7 ", 7.0),
    ({}, 600, 60.0),
    ({}, 1e300, 60.0),
    ({}, "1" * 400, 60.0),
    ({}, "²", None),
    ({}, "1e5", None),
    ({}, -3, None),
    ({}, True, None),
    ({}, None, None),
    ({"retry-after": "99999999999999999999"}, 5, 60.0),
    ({"retry-after": "2"}, 50, 2.0),
]


@pytest.mark.parametrize(("headers", "given", "seconds"), RETRY_CASES)
def test_server_delays_are_read_leniently_and_clamped(
    headers: dict[str, str], given: object, seconds: float | None
) -> None:
    body = orjson.dumps({"errors": [err("RATE_LIMITED", extensions={"retryAfter": given})], "data": None})
    response = UpstreamResponse(
        status=200,
        headers=httpx.Headers({"content-type": "application/json", **headers}),
        body=body,
        max_server_delay=60.0,
    )
    answer = read_answer(body, "application/json")
    status = graphql_error_status(UpstreamGraphQLError(answer, response, upstream="octospine", route=ROUTE))
    assert status.code == C.RESOURCE_EXHAUSTED.value[0]
    retry = _details(status).get("RetryInfo")
    assert (None if retry is None else retry.retry_delay.ToTimedelta().total_seconds()) == seconds


def test_retry_after_from_the_header_wins_over_the_extension() -> None:
    status = _status(429, [err("RATE_LIMITED", extensions={"retryAfter": 50})], {"retry-after": "7"})
    assert _details(status)["RetryInfo"].retry_delay.seconds == 7
    status = _status(200, [err("RATE_LIMITED", extensions={"retryAfter": 50})])
    assert _details(status)["RetryInfo"].retry_delay.seconds == 50


def test_not_found_names_the_missing_path() -> None:
    info = _details(_status(200, [err("NOT_FOUND", "pipeline 'x' not found", path=["pipeline"])]))
    assert info["ResourceInfo"].resource_name == "pipeline"
    assert info["ResourceInfo"].resource_type == ROUTE
    assert info["ResourceInfo"].description == "pipeline 'x' not found"
