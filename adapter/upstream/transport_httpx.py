"""The ``httpx`` upstream exchange: httpx's own pool (httpcore), or any
``httpx.AsyncBaseTransport`` handed in. httpx's errors are translated here."""

from __future__ import annotations

import httpx

from adapter.config.settings import UpstreamSettings

from .errors import (
    UpstreamConnectError,
    UpstreamConnectionReset,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamTransportError,
)
from .transport import Answer, tls_verification, too_large

__all__ = ["HttpxExchange"]


class HttpxExchange:
    def __init__(
        self, settings: UpstreamSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._transport = transport or httpx.AsyncHTTPTransport(
            verify=tls_verification(settings),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_keepalive_connections,
                keepalive_expiry=30.0,
            ),
            trust_env=False,
        )
        # The caller's deadline bounds the whole call; only connecting has its own bound.
        self._timeout = {
            "connect": settings.connect_timeout_seconds,
            "read": None,
            "write": None,
            "pool": None,
        }
        self._closed = False

    async def exchange(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        max_bytes: int,
        upstream: str,
        route: str,
    ) -> Answer:
        request = httpx.Request(
            method, url, headers=headers, content=body, extensions={"timeout": self._timeout}
        )
        try:
            response = await self._transport.handle_async_request(request)
            response.request = request
            try:
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise too_large(max_bytes, upstream, route, int(declared))
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():  # content-encoding decoded
                    size += len(chunk)
                    if size > max_bytes:
                        raise too_large(max_bytes, upstream, route)
                    chunks.append(chunk)
            finally:
                await response.aclose()
        except UpstreamError:
            raise
        except httpx.TransportError as exc:
            raise _translate(exc, upstream, route) from exc
        return Answer(response.status_code, response.headers, b"".join(chunks))

    async def aclose(self) -> None:
        """Closes the pool; idempotent."""
        if not self._closed:
            self._closed = True
            await self._transport.aclose()


def _translate(exc: httpx.TransportError, upstream: str, route: str) -> UpstreamTransportError:
    where = {"upstream": upstream, "route": route}
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"timed out connecting ({type(exc).__name__})", **where)
    if isinstance(exc, httpx.ConnectError):
        return UpstreamConnectError(f"cannot connect: {exc}", **where)
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError | httpx.WriteError):
        return UpstreamConnectionReset(f"connection dropped mid-answer: {exc or type(exc).__name__}", **where)
    return UpstreamTransportError(f"transport failure: {exc or type(exc).__name__}", **where)
