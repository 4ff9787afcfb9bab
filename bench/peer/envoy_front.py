"""A measurement, not a server to ship: the adapter's unary calls answered through
Envoy (pyvoy: Envoy's HTTP/2 in C++, the app in an embedded CPython) instead of
grpc.aio's server, to size what a compiled gRPC front would buy (issue 11).

Run by ``python -m bench.peer.front`` as ``pyvoy bench.peer.envoy_front:app``:

- ``ENVOY_FRONT=adapter``: the adapter is assembled and started as ``python -m
  adapter`` starts it (settings from the environment; its grpc.aio server listens
  too, on its own port, idle). Each request is resolved through the same
  interceptors grpc.aio would run (authorization gate, call cap, handler memo,
  tracing filter, duration, request decoding) and answered by the same method
  handler, with a context built from the request's headers;
- ``ENVOY_FRONT=ceiling``: every GetDevice answered with the fixed Device, as
  ``bench/peer/ceiling.py`` answers it on grpc.aio: what the front alone costs.

The gRPC protocol is written out here (framing, ``grpc-timeout``, metadata, status
trailers) because the library that does it over ASGI, connect-python, cost 131-156
µs a call on this path against 67-92 for these lines and 188 for grpc.aio (docs/
benchmarks.md, twenty-sixth stop): the question is what the lean front costs.
Unary calls only, no compression, no TLS; health, reflection and the event stream
are routed by Envoy to the adapter's grpc.aio server (``bench/peer/front.py``'s
configuration).
"""

from __future__ import annotations

import base64
import logging
import os
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

__all__ = ["app"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Metadata = tuple[tuple[str, str | bytes], ...]

_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_RESPONSE_HEADERS = [(b"content-type", b"application/grpc")]
_OK_TRAILERS = [(b"grpc-status", b"0")]
# Request headers that are the protocol's, not the caller's metadata (grpc.aio
# hides the same ones from invocation_metadata()).
_PROTOCOL_HEADERS = frozenset(
    {b"te", b"content-type", b"user-agent", b"grpc-accept-encoding", b"grpc-encoding", b"grpc-timeout"}
)

logger = logging.getLogger("bench.peer.envoy_front")


class CallDetails:
    """What grpc.aio hands an interceptor (``grpc.HandlerCallDetails``)."""

    __slots__ = ("invocation_metadata", "method")

    def __init__(self, method: str, invocation_metadata: Metadata) -> None:
        self.method = method
        self.invocation_metadata = invocation_metadata


class _Aborted(Exception):
    """``context.abort``: the status is on the context already."""


class CallContext:
    """The part of ``grpc.aio.ServicerContext`` the adapter's handlers and
    interceptors use."""

    __slots__ = ("_code", "_deadline", "_details", "_metadata", "_peer", "_trailing")

    def __init__(self, metadata: Metadata, deadline: float | None, peer: str) -> None:
        self._metadata = metadata
        self._deadline = deadline
        self._peer = peer
        self._code = grpc.StatusCode.OK
        self._details = ""
        self._trailing: Sequence[tuple[str, str | bytes]] = ()

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}  # plaintext: no peer certificate

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
        del initial_metadata  # sent with the answer's headers, which carry none here

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> None:
        self._code, self._details, self._trailing = code, details, trailing_metadata
        raise _Aborted

    async def abort_with_status(self, status: grpc.Status) -> None:
        await self.abort(status.code, status.details, status.trailing_metadata)


def _timeout(value: bytes) -> float | None:
    """``grpc-timeout`` (``20S``, ``100m``...) in seconds; None if unreadable."""
    try:
        return int(value[:-1]) * _UNITS[chr(value[-1])]
    except (ValueError, KeyError, IndexError):
        return None


def _call_context(scope: Scope) -> CallContext:
    metadata: list[tuple[str, str | bytes]] = []
    deadline = None
    for name, value in scope["headers"]:
        if name == b"grpc-timeout":
            timeout = _timeout(value)
            deadline = None if timeout is None else time.monotonic() + timeout
        elif name not in _PROTOCOL_HEADERS and name[:1] != b":":
            key = name.decode("latin-1")
            if key.endswith("-bin"):
                metadata.append((key, base64.b64decode(value + b"==")))
            else:
                metadata.append((key, value.decode("latin-1")))
    host, port = scope.get("client") or ("", 0)
    return CallContext(tuple(metadata), deadline, f"ipv4:{host}:{port}")


def _status_trailers(context: CallContext) -> list[tuple[bytes, bytes]]:
    trailers = [(b"grpc-status", str(context.code().value[0]).encode())]
    if context.details():
        trailers.append((b"grpc-message", urllib.parse.quote(context.details(), safe=" ").encode()))
    for key, value in context.trailing_metadata():
        if key.endswith("-bin"):
            raw = value if isinstance(value, bytes) else value.encode()
            trailers.append((key.encode(), base64.b64encode(raw).rstrip(b"=")))
        else:
            trailers.append((key.encode(), value.encode() if isinstance(value, str) else value))
    return trailers


class UnaryFront:
    """Resolves a method as grpc.aio does (interceptors outermost first, then the
    generic handlers) and runs its unary behaviour."""

    def __init__(self, handlers: dict[str, Any], interceptors: Sequence[Any]) -> None:
        self._handlers = handlers
        self._interceptors = list(interceptors)

    async def resolve(self, details: CallDetails, at: int = 0) -> Any:
        if at == len(self._interceptors):
            return self._handlers.get(details.method)

        async def continuation(inner: CallDetails) -> Any:
            return await self.resolve(inner, at + 1)

        return await self._interceptors[at].intercept_service(continuation, details)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        context = _call_context(scope)
        payload = None
        try:
            handler = await self.resolve(CallDetails(scope["path"], context.invocation_metadata()))
            if handler is None:
                context.set_code(grpc.StatusCode.UNIMPLEMENTED)
                context.set_details("Method not found!")
            elif len(body) < 5 or body[0] != 0:
                context.set_code(grpc.StatusCode.INTERNAL)
                context.set_details("not one uncompressed message")
            else:
                request: Any = body[5:]
                if handler.request_deserializer is not None:
                    request = handler.request_deserializer(request)
                response = await handler.unary_unary(request, context)
                if response is not None and context.code() == grpc.StatusCode.OK:
                    serialize = handler.response_serializer
                    payload = serialize(response) if serialize is not None else response
        except _Aborted:
            pass
        except Exception:  # what grpc.aio answers an exception with
            logger.exception("%s failed", scope["path"])
            context.set_code(grpc.StatusCode.UNKNOWN)
            context.set_details("Unexpected error")
        await send(
            {"type": "http.response.start", "status": 200, "headers": _RESPONSE_HEADERS, "trailers": True}
        )
        if payload is not None and context.code() == grpc.StatusCode.OK:
            frame = b"\x00" + len(payload).to_bytes(4, "big") + payload
            await send({"type": "http.response.body", "body": frame, "more_body": False})
            trailers = _OK_TRAILERS
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            trailers = _status_trailers(context)
        await send({"type": "http.response.trailers", "headers": trailers, "more_trailers": False})


async def _adapter_front() -> tuple[UnaryFront, Callable[[], Awaitable[None]]]:
    """The adapter started as ``adapter.cli.serve`` starts it; its handlers and
    interceptors behind a :class:`UnaryFront`."""
    from adapter.config.settings import load_settings
    from adapter.gc_tuning import freeze_startup_heap
    from adapter.runtime import MeshAdapter
    from adapter.telemetry.logs import configure_logging
    from adapter.telemetry.metrics import build_meter_provider
    from adapter.telemetry.tracing import build_tracer_provider

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    tracer_provider = build_tracer_provider(settings.telemetry)
    meter_provider, registry = build_meter_provider(settings.telemetry, set_global=True)
    adapter = MeshAdapter(
        settings, tracer_provider=tracer_provider, meter_provider=meter_provider, metrics_registry=registry
    )
    await adapter.start()
    server = adapter.server
    assert server is not None
    handlers = {f"/{s.name}/{m}": h for s in server.services for m, h in s.handlers.items()}
    front = UnaryFront(handlers, server._interceptors)  # the bench reads the assembled chain
    freeze_startup_heap()
    return front, adapter.stop


def _ceiling_front() -> UnaryFront:
    from bench.peer.__main__ import BODY
    from bench.peer.ceiling import fixed_device, handler

    generic = handler(fixed_device(BODY))
    method = generic.service(CallDetails("/openframe.v1.DeviceService/GetDevice", ()))  # type: ignore[arg-type]
    return UnaryFront({"/openframe.v1.DeviceService/GetDevice": method}, ())


class _App:
    def __init__(self) -> None:
        self._front: UnaryFront | None = None
        self._stop: Callable[[], Awaitable[None]] | None = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("ENVOY_FRONT", "adapter") == "ceiling":
                    self._front = _ceiling_front()
                else:
                    self._front, self._stop = await _adapter_front()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._stop is not None:
                    await self._stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and self._front is not None:
            await self._front(scope, receive, send)


app = _App()
