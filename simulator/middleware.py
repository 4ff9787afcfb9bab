"""The request pipeline of both vendors' apps, outermost first:

1. `record_requests`: X-Request-Id, the request log, cancellation, one log line per request.
2. `inject_faults`: the fault switches (they answer before auth, like a broken gateway).
3. `render_errors`: `ApiError` and aiohttp's own 404/405 in the vendor's error shape (GraphQL's
   ``{"errors": [...]}`` on OCTOSPINE's `/graphql`).
4. `admit`: authentication, then the per-credential rate limit (`/graphql` has its own).
5. `deduplicate`: `Idempotency-Key` on POST.
6. `conditional_get`: a strong `ETag` on successful reads, `304` for a matching `If-None-Match`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from simulator.auth import authenticate
from simulator.errors import ApiError, error_response
from simulator.fault_responses import apply_fault
from simulator.idempotency import IDEMPOTENCY_HEADER, KeyReusedError
from simulator.octospine.graphql_endpoint import GRAPHQL_ROUTE, graphql_error_response
from simulator.recording import RequestRecord
from simulator.runtime import RUNTIME, is_admin, route_of
from simulator.wire import new_request_id

logger = logging.getLogger(__name__)

RECORD = web.RequestKey("record", RequestRecord)
RATE_LIMIT_HEADERS = web.RequestKey("rate_limit_headers", dict[str, str])
CREDENTIAL = web.RequestKey("credential", str)
SERVER_CLOSED = web.RequestKey("server_closed", bool)


@web.middleware
async def record_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Records the request before anything else runs and completes the record at the end."""
    if is_admin(request):
        return await handler(request)
    runtime = request.app[RUNTIME]
    body = await request.read()
    record = RequestRecord(
        vendor=runtime.vendor,
        method=request.method,
        path=request.path,
        route=route_of(request),
        query=list(request.query.items()),
        headers=request.headers.copy(),
        body=body,
        request_id=new_request_id(),
        started=time.monotonic(),
    )
    request[RECORD] = record
    runtime.log.add(record)
    try:
        response = await handler(request)
        record.status = response.status
        return response
    except asyncio.CancelledError:
        record.cancelled = not request.get(SERVER_CLOSED, False)
        raise
    except web.HTTPException as exc:
        record.status = exc.status
        raise
    except BaseException:
        record.status = 500
        raise
    finally:
        record.ended = time.monotonic()
        logger.info(
            "%s %s %s -> %s%s (%.1f ms)",
            runtime.vendor,
            request.method,
            request.path_qs,
            "cancelled" if record.cancelled else record.status,
            f" [fault {record.fault}]" if record.fault else "",
            (record.ended - record.started) * 1000,
        )


async def add_response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: X-Request-Id and rate-limit headers on every answer."""
    record = request.get(RECORD)
    if record is not None:
        response.headers.setdefault("X-Request-Id", record.request_id)
    for name, value in request.get(RATE_LIMIT_HEADERS, {}).items():
        response.headers[name] = value


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Applies the first matching fault switch, if any."""
    if is_admin(request):
        return await handler(request)
    runtime = request.app[RUNTIME]
    record = request[RECORD]
    fault = runtime.faults.take(runtime.vendor, request.method, record.route, request.path)
    if fault is None:
        return await handler(request)
    record.fault = fault.kind
    return await apply_fault(fault, request, handler, runtime.vendor, record.request_id)


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns errors into the vendor's error body."""
    if is_admin(request):
        return await handler(request)
    runtime = request.app[RUNTIME]
    request_id = request[RECORD].request_id
    # GraphQL clients read `{"errors": [...]}`, not the REST error shape.
    graphql = runtime.vendor == "octospine" and route_of(request) == GRAPHQL_ROUTE
    try:
        return await handler(request)
    except ApiError as exc:
        return graphql_error_response(exc) if graphql else error_response(runtime.vendor, exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        error = ApiError(exc.status, exc.reason, headers=headers)
        return graphql_error_response(error) if graphql else error_response(runtime.vendor, error, request_id)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        logger.exception("%s %s %s failed", runtime.vendor, request.method, request.path)
        return error_response(runtime.vendor, ApiError(500, "Internal error"), request_id)


@web.middleware
async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticates the caller, then counts the request against its rate limit."""
    runtime = request.app[RUNTIME]
    route = route_of(request)
    if is_admin(request) or route in runtime.public_routes:
        return await handler(request)
    credential = authenticate(
        request,
        vendor=runtime.vendor,
        style=runtime.settings.auth_style,
        api_keys=runtime.api_keys,
        tokens=runtime.tokens,
        allow_query_token=route in runtime.websocket_routes,
    )
    request[CREDENTIAL] = credential
    request[RECORD].credential = credential
    decision = runtime.limiter_for(route).acquire(credential)
    if runtime.settings.rate_limit_headers and decision.limit is not None:
        request[RATE_LIMIT_HEADERS] = {
            "X-RateLimit-Limit-Minute": str(decision.limit),
            "X-RateLimit-Remaining-Minute": str(decision.remaining),
        }
    if not decision.allowed:
        raise ApiError(
            429,
            f"Rate limit of {decision.limit} requests per window exceeded",
            retry_after=decision.retry_after_s,
        )
    return await handler(request)


@web.middleware
async def deduplicate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Replays the first answer for a repeated `Idempotency-Key` on POST."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if request.method != "POST" or not key or is_admin(request):
        return await handler(request)
    runtime = request.app[RUNTIME]
    slot = (request.get(CREDENTIAL, ""), request.path, key)
    try:
        stored = await runtime.idempotency.lookup(slot, await request.read())
    except KeyReusedError:
        raise ApiError(409, f"{IDEMPOTENCY_HEADER} {key!r} was used with a different body") from None
    if stored is not None:
        return stored.response()
    try:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(runtime.vendor, exc, request[RECORD].request_id)
    except BaseException:
        runtime.idempotency.abandon(slot)
        raise
    runtime.idempotency.complete(slot, response)
    return response


@web.middleware
async def conditional_get(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ETag revalidation as real APIs do it: the tag is a hash of the answer's bytes."""
    response = await handler(request)
    if request.method != "GET" or response.status != 200 or not isinstance(response, web.Response):
        return response
    body = response.body if isinstance(response.body, bytes) else b""
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    offered = {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}
    if etag in offered or "*" in offered:
        return web.Response(status=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return response


PIPELINE = (record_requests, inject_faults, render_errors, admit, deduplicate, conditional_get)
