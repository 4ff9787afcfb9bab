"""Unary gRPC over ASGI: what the envoy front answers inside Envoy.

Envoy (HTTP/2, flow control, connection limits, keepalive) hands each request to
this ASGI application through pyvoy; this module speaks the gRPC protocol on top
(framing, ``grpc-timeout``, metadata, status trailers) and runs the adapter's own
interceptors and method handlers, the same objects grpc.aio runs. Written by hand
because the library that does it, connect-python, cost 131-156 µs a call on this
path against 67-92 for these lines (docs/benchmarks.md, twenty-sixth stop): the
whole point of the front is the CPU it saves.

Unary methods only: streams, health and reflection are routed by Envoy to the
adapter's grpc.aio server (:mod:`.envoy_config`). What a call may end with here,
besides the handler's own status:

- ``UNIMPLEMENTED``: no such method, a streaming one, or a compressed message
  while ``grpc.accept_compressed_requests`` is off (or an encoding not offered);
- ``RESOURCE_EXHAUSTED``: a message over ``grpc.max_receive_message_bytes``,
  refused before it is buffered whole; metadata over grpc's 16 KiB;
- ``INTERNAL``: a body that is not exactly one message, unreadable metadata;
- ``DEADLINE_EXCEEDED``: ``grpc-timeout`` passed; ``CANCELLED``: the caller left
  while its message was read (a caller that leaves later has its handler cancelled,
  the upstream request with it, and gets no answer, as on grpc.aio);
- ``UNAVAILABLE``: the adapter is stopping (its grace period has begun);
- ``UNKNOWN``: the handler raised (logged with its traceback), as grpc.aio answers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import string
import time
import urllib.parse
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from adapter.upstream.deadline_timer import DeadlineTimer

from .abandoned_calls import AbandonedCalls, Receive

__all__ = ["CallContext", "CallDetails", "UnaryFront"]

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Metadata = tuple[tuple[str, str | bytes], ...]
# grpc-stubs types RpcMethodHandler as an ABC; at run time it is a namedtuple.
Handler = Any

logger = logging.getLogger(__name__)

_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_GRPC_HEADERS = [(b"content-type", b"application/grpc")]
_OK_TRAILERS = [(b"grpc-status", b"0")]
# Request headers that are the protocol's, not the caller's metadata (grpc.aio hides
# the same ones from invocation_metadata()).
_PROTOCOL_HEADERS = frozenset(
    {b"te", b"content-type", b"user-agent", b"grpc-accept-encoding", b"grpc-encoding", b"grpc-timeout"}
)
#: How often running calls are asked whether their caller left (and how long a call
#: runs before it is first asked): a cancelled call stops within about twice this.
ABANDON_CHECK_SECONDS = 0.1
#: grpc core's hard limit on a call's metadata (``grpc.max_metadata_size``'s default),
#: over which grpc.aio refuses every call; each entry counted as HPACK counts it, name
#: + value + 32. (Between its soft limit, 8 KiB, and this one grpc refuses some calls at
#: random; the front does not.) Envoy's own limits sit above: 60 KiB, 512 entries.
_MAX_METADATA = 16 * 1024
_ENTRY_OVERHEAD = 32
#: ``:method: POST``, ``:scheme: http`` and ``:path``'s name, as grpc counts them.
_PSEUDO_HEADERS = 3 * _ENTRY_OVERHEAD + len(b":methodPOST:schemehttp:path")
_XFCC = b"x-forwarded-client-cert"
# grpc-message is percent-encoded outside printable ASCII, and '%' itself (the spec).
_MESSAGE_SAFE = "".join(c for c in string.printable if c not in "%\t\n\r\x0b\x0c")
_DECOMPRESSORS = {b"gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}


class CallDetails:
    """What grpc.aio hands an interceptor (``grpc.HandlerCallDetails``)."""

    __slots__ = ("invocation_metadata", "method")

    def __init__(self, method: str, invocation_metadata: Metadata) -> None:
        self.method = method
        self.invocation_metadata = invocation_metadata


class _Ended(Exception):
    """The call's status is on its context (``abort``, or a refusal of the front)."""


class CallContext:
    """The part of ``grpc.aio.ServicerContext`` the adapter's handlers and
    interceptors use (tests/server/test_envoy_front.py runs them through it)."""

    __slots__ = ("_code", "_deadline", "_details", "_initial", "_metadata", "_peer", "_trailing")

    def __init__(self, metadata: Metadata, deadline: float | None, peer: str) -> None:
        self._metadata = metadata
        self._deadline = deadline
        self._peer = peer
        self._code = grpc.StatusCode.OK
        self._details = ""
        self._initial: Metadata = ()
        self._trailing: Sequence[tuple[str, str | bytes]] = ()

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}  # plaintext only (settings refuse security.tls with this front)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def set_details(self, details: str) -> None:
        self._details = details

    def details(self) -> str:
        return self._details

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._trailing = trailing_metadata

    def trailing_metadata(self) -> Sequence[tuple[str, str | bytes]]:
        return self._trailing

    async def send_initial_metadata(self, initial_metadata: Metadata) -> None:
        self._initial = tuple(initial_metadata)  # sent with the answer's headers

    def initial_metadata(self) -> Metadata:
        return self._initial

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> None:
        self._code, self._details, self._trailing = code, details, trailing_metadata
        raise _Ended

    async def abort_with_status(self, status: grpc.Status) -> None:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def end(self, code: grpc.StatusCode, details: str) -> _Ended:
        self._code, self._details = code, details
        return _Ended()


def _timeout(value: bytes) -> float | None:
    """``grpc-timeout`` (``20S``, ``100m``...) in seconds; None if unreadable."""
    try:
        amount = int(value[:-1])
        return amount * _UNITS[chr(value[-1])] if 0 <= amount < 10**8 else None
    except (ValueError, KeyError, IndexError):
        return None


def _peer(scope: Scope) -> str:
    host, port = scope.get("client") or ("", 0)
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


def _metadata_value(name: bytes, value: bytes) -> tuple[str, str | bytes]:
    key = name.decode("latin-1")
    if key.endswith("-bin"):
        return key, base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
    return key, value.decode("latin-1")


def _encode_metadata(key: str, value: str | bytes) -> tuple[bytes, bytes]:
    if key.endswith("-bin"):
        raw = value if isinstance(value, bytes) else value.encode()
        return key.encode(), base64.b64encode(raw).rstrip(b"=")
    return key.encode(), value.encode() if isinstance(value, str) else value


def _status_trailers(context: CallContext) -> list[tuple[bytes, bytes]]:
    trailers = [(b"grpc-status", str(context.code().value[0]).encode())]
    if context.details():
        trailers.append((b"grpc-message", urllib.parse.quote(context.details(), safe=_MESSAGE_SAFE).encode()))
    trailers.extend(_encode_metadata(k, v) for k, v in context.trailing_metadata())
    return trailers


def _read_headers(scope: Scope) -> tuple[Metadata, float | None, tuple[grpc.StatusCode, str] | None]:
    """The caller's metadata and deadline, or (with no metadata) why the call ends."""
    metadata: list[tuple[str, str | bytes]] = []
    deadline = None
    headers = scope["headers"]
    size = _PSEUDO_HEADERS + len(scope["path"]) + _ENTRY_OVERHEAD * len(headers)
    for name, value in headers:
        size += len(name) + len(value)
        if name == b"grpc-timeout":
            timeout = _timeout(value)
            if timeout is None:
                return (), None, (grpc.StatusCode.INTERNAL, f"unreadable grpc-timeout {value[:16]!r}")
            deadline = time.monotonic() + timeout
        elif name not in _PROTOCOL_HEADERS and name[:1] != b":":
            if name == _XFCC:  # Envoy's (the gate reads it), not the caller's: not counted
                size -= len(name) + len(value) + _ENTRY_OVERHEAD
            try:
                metadata.append(_metadata_value(name, value))
            except (binascii.Error, ValueError):
                problem = f"metadata {name[:64].decode('latin-1')!r} is not base64"
                return (), None, (grpc.StatusCode.INTERNAL, problem)
    if size > _MAX_METADATA:
        return (), None, (grpc.StatusCode.RESOURCE_EXHAUSTED, _over_limit(headers, size))
    return tuple(metadata), deadline, None


def _over_limit(headers: list[tuple[bytes, bytes]], size: int) -> str:
    """grpc core's words: one value over the limit is named by its length."""
    longest = max((len(value) for name, value in headers if name != _XFCC), default=0)
    measured = f"value length {longest}" if longest > _MAX_METADATA else str(size)
    return f"received metadata size exceeds hard limit ({measured} vs. {_MAX_METADATA})"


class UnaryFront:
    """Resolves a method as grpc.aio does (interceptors outermost first, then the
    method's handler) and answers it. ``close()`` refuses new calls (UNAVAILABLE)
    and ``wait_idle()`` waits for those in flight: the server's graceful stop."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        interceptors: Sequence[Any],
        *,
        max_message_bytes: int,
        accept_compressed: bool,
    ) -> None:
        self._handlers = handlers
        self._interceptors = list(interceptors)
        self._max_message = max_message_bytes
        self._accept_compressed = accept_compressed
        self._closed = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._abandoned = AbandonedCalls(ABANDON_CHECK_SECONDS)
        self._deadlines = DeadlineTimer()  # one loop timer for the callers' deadlines

    def close(self) -> None:
        self._closed = True

    async def wait_idle(self, within: float | None) -> bool:
        """True once no call is in flight; False if ``within`` seconds passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        await self._abandoned.aclose()
        return True

    async def resolve(self, details: CallDetails, at: int = 0) -> Handler:
        if at == len(self._interceptors):
            return self._handlers.get(details.method)

        async def continuation(inner: CallDetails) -> Handler:
            return await self.resolve(inner, at + 1)

        return await self._interceptors[at].intercept_service(continuation, details)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        grpc_request = headers.get(b"content-type", b"").startswith(b"application/grpc")
        if scope.get("method") != "POST" or not grpc_request:
            # The spec's answer to a client that is not gRPC: not a 200 it could misread.
            await send({"type": "http.response.start", "status": 415, "headers": [], "trailers": False})
            await send({"type": "http.response.body", "body": b"not a gRPC request\n", "more_body": False})
            return
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._answer(scope, headers, receive, send)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _answer(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send) -> None:
        metadata, deadline, problem = _read_headers(scope)
        context = CallContext(metadata, deadline, _peer(scope))
        payload: bytes | None = None
        try:
            if problem is not None:
                raise context.end(*problem)
            if self._closed:
                raise context.end(grpc.StatusCode.UNAVAILABLE, "the adapter is shutting down")
            handler = await self.resolve(CallDetails(scope["path"], metadata))
            if handler is None or handler.unary_unary is None:
                raise context.end(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
            encoding = headers.get(b"grpc-encoding", b"identity")
            if encoding != b"identity" and not self._accept_compressed:
                # Refused by its header, as grpc core refuses it: a client may send a
                # message it found no smaller compressed as is, and still name gzip.
                raise context.end(
                    grpc.StatusCode.UNIMPLEMENTED,
                    "compressed requests are not accepted (grpc.accept_compressed_requests)",
                )
            body = await self._read_message(context, encoding, receive)
            request = handler.request_deserializer(body) if handler.request_deserializer else body
            call = self._abandoned.run(handler.unary_unary(request, context), receive)
            if deadline is None:
                response = await call
            else:
                remaining = context.time_remaining() or 0.0
                expiry = self._deadlines.start(asyncio.get_running_loop().time() + remaining)
                try:
                    response = await call
                except asyncio.CancelledError:
                    if self._deadlines.expired(expiry):
                        raise context.end(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
                    raise
                finally:
                    self._deadlines.forget(expiry)
            if response is not None and context.code() == grpc.StatusCode.OK:
                serialize = handler.response_serializer
                payload = serialize(response) if serialize is not None else response
        except _Ended:
            pass
        except asyncio.CancelledError:
            if not self._abandoned.forget_current():
                raise
            return  # nobody to answer: the caller reset the stream
        except Exception:  # what grpc.aio answers an exception with
            logger.exception("%s failed", scope.get("path"))
            context.set_code(grpc.StatusCode.UNKNOWN)
            context.set_details("Unexpected error")
        start = _GRPC_HEADERS + [_encode_metadata(k, v) for k, v in context.initial_metadata()]
        await send({"type": "http.response.start", "status": 200, "headers": start, "trailers": True})
        if payload is not None and context.code() == grpc.StatusCode.OK:
            frame = b"\x00" + len(payload).to_bytes(4, "big") + payload
            await send({"type": "http.response.body", "body": frame, "more_body": False})
            trailers = _OK_TRAILERS
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            trailers = _status_trailers(context)
        await send({"type": "http.response.trailers", "headers": trailers, "more_trailers": False})

    async def _read_message(self, context: CallContext, encoding: bytes, receive: Receive) -> bytes:
        """The one message of the body, refused once it is known to be too large."""
        limit = self._max_message
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise context.end(grpc.StatusCode.CANCELLED, "the caller cancelled the call")
            body += message.get("body", b"")
            if len(body) >= 5:
                size = int.from_bytes(body[1:5], "big")
                if size > limit:  # told by the prefix: refused before it is buffered
                    raise context.end(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"SERVER: Received message larger than max ({size} vs. {limit})",
                    )
                if len(body) > 5 + size:
                    raise context.end(grpc.StatusCode.INTERNAL, "a unary call's body holds two messages")
            if not message.get("more_body"):
                break
        if len(body) < 5 or len(body) != 5 + int.from_bytes(body[1:5], "big"):
            raise context.end(grpc.StatusCode.INTERNAL, "the body is not one whole gRPC message")
        if body[0] == 0:
            return bytes(body[5:])
        if body[0] != 1:
            raise context.end(grpc.StatusCode.INTERNAL, f"unknown message flags {body[0]:#x}")
        return self._inflate(context, encoding, bytes(body[5:]))

    def _inflate(self, context: CallContext, encoding: bytes, data: bytes) -> bytes:
        wbits = _DECOMPRESSORS.get(encoding)
        if wbits is None:
            raise context.end(grpc.StatusCode.UNIMPLEMENTED, f"message encoding {encoding!r} is not offered")
        inflater = zlib.decompressobj(wbits)
        try:  # bounded: a small bomb must not inflate past the cap
            message = inflater.decompress(data, self._max_message + 1)
        except zlib.error:
            raise context.end(grpc.StatusCode.INTERNAL, "the compressed message does not inflate") from None
        if len(message) > self._max_message or inflater.unconsumed_tail:
            raise context.end(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"SERVER: Received message larger than max (more than {self._max_message} inflated)",
            )
        return message
