"""How each fault kind answers (or breaks) an HTTP exchange."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

from simulator.config import Vendor
from simulator.errors import TOKEN_EXPIRED_CODES, ApiError, error_response
from simulator.faults import Fault
from simulator.wire import JSON_CONTENT_TYPE, dumps

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: The `graphql_field` fault of the current request, for the GraphQL endpoint.
GRAPHQL_FAULT = web.RequestKey("graphql_fault", Fault)

HTML_ERROR_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
MALFORMED_BODY = b"{'simulated': malformed json,, \"data\": [}"
EXPIRED_CHALLENGE = 'Bearer error="invalid_token", error_description="The access token expired"'


async def apply_fault(
    fault: Fault, request: web.Request, handler: Handler, vendor: Vendor, request_id: str
) -> web.StreamResponse:
    """Answers `request` the way `fault` says (after its latency, if any)."""
    if fault.latency:
        await asyncio.sleep(fault.latency)  # cancelled with the handler if the client leaves
    kind = fault.kind
    if kind == "redirect":
        return _redirect(fault, request)
    if kind == "content_type":
        return _wrong_content_type(fault)
    if kind == "expired_token":
        error = ApiError(
            401,
            "The access token expired",
            code=TOKEN_EXPIRED_CODES[vendor],
            headers={"WWW-Authenticate": EXPIRED_CHALLENGE, **(fault.headers or {})},
        )
        return error_response(vendor, error, request_id)
    if kind == "status":
        return _status(fault, vendor, request_id)
    if kind == "graphql_field":
        request[GRAPHQL_FAULT] = fault
        return await handler(request)
    response = await handler(request)
    if kind == "latency" or not isinstance(response, web.Response) or not response.body:
        return response  # WebSocket upgrades and bodyless answers pass unchanged
    body = response.body
    assert isinstance(body, bytes)
    if kind == "reset":
        return await _reset_mid_body(request, response, body)
    spoiled = body[: len(body) // 2] if kind == "truncated_json" else MALFORMED_BODY
    return _with_body(response, spoiled)


def _status(fault: Fault, vendor: Vendor, request_id: str) -> web.Response:
    assert fault.status is not None
    headers = dict(fault.headers or {})
    if fault.body is not None or fault.status < 400:
        response = _custom_body(fault.status, fault.body)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = _retry_after_header(fault.retry_after)
        response.headers.update(headers)
        return response
    retry_after: int | None = None
    if isinstance(fault.retry_after, int | float):
        retry_after = int(fault.retry_after)
    elif isinstance(fault.retry_after, str):
        headers["Retry-After"] = fault.retry_after  # an HTTP-date stays as given
    reason = web.Response(status=fault.status).reason
    error = ApiError(fault.status, f"Simulated {reason}", retry_after=retry_after, headers=headers)
    return error_response(vendor, error, request_id)


def _retry_after_header(value: int | float | str) -> str:
    return value if isinstance(value, str) else str(int(value))


def _custom_body(status: int, body: object) -> web.Response:
    if body is None:
        return web.Response(status=status, body=b"{}", content_type=JSON_CONTENT_TYPE)
    if isinstance(body, bytes | str):
        raw = body.encode() if isinstance(body, str) else body
        return web.Response(status=status, body=raw, content_type=JSON_CONTENT_TYPE)
    return web.Response(status=status, body=dumps(body), content_type=JSON_CONTENT_TYPE)


def _redirect(fault: Fault, request: web.Request) -> web.Response:
    target = fault.redirect or ""
    location = target if "://" in target else f"http://{target}{request.path_qs}"
    status = fault.status if fault.status and 300 <= fault.status < 400 else 302
    response = web.Response(status=status, headers={"Location": location})
    response.headers.update(fault.headers or {})
    return response


def _wrong_content_type(fault: Fault) -> web.Response:
    body = fault.body if fault.body is not None else HTML_ERROR_PAGE
    raw = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else dumps(body)
    response = web.Response(status=fault.status or 200, body=raw)
    response.headers["Content-Type"] = fault.content_type or "text/html"
    response.headers.update(fault.headers or {})
    return response


def _with_body(response: web.Response, body: bytes) -> web.Response:
    spoiled = web.Response(status=response.status, body=body)
    for name, value in response.headers.items():
        if name.lower() != "content-length":
            spoiled.headers[name] = value
    return spoiled


async def _reset_mid_body(request: web.Request, response: web.Response, body: bytes) -> web.StreamResponse:
    """Sends the headers and half the body, then resets the TCP connection (RST)."""
    stream = web.StreamResponse(status=response.status)
    for name, value in response.headers.items():
        if name.lower() != "content-length":
            stream.headers[name] = value
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: max(1, len(body) // 2)])
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends RST instead of FIN, so the client sees a reset.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return stream
