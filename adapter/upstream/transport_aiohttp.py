"""The default upstream exchange: aiohttp's client, used directly.

One ``ClientSession`` per upstream, opened on first use (aiohttp wants a running
loop), with no cookie jar (an adapter serving many callers must not carry one
answer's cookies into another's request) and automatic redirects off (the
client follows them itself, refusing other origins). aiohttp's errors are
translated here, and only here.
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from adapter.config.settings import UpstreamSettings

from .errors import (
    UpstreamConnectError,
    UpstreamConnectionReset,
    UpstreamTimeoutError,
    UpstreamTransportError,
)
from .response_headers import response_headers
from .transport import Answer, TlsVerification, too_large

__all__ = ["AiohttpExchange"]


class AiohttpExchange:
    def __init__(self, settings: UpstreamSettings) -> None:
        self._settings = settings
        self._verification = TlsVerification(settings)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise UpstreamTransportError("the upstream client is closed")
        settings = self._settings
        connector = aiohttp.TCPConnector(
            limit=settings.max_connections, limit_per_host=0, keepalive_timeout=30.0
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # The caller's deadline bounds the whole call; only connecting has its own bound.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout_seconds),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        return self._session

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
        session = self._session or self._open()
        try:
            async with session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                # Per request: a rotated ca_bundle applies to the new connections.
                ssl=self._verification.current(),
            ) as response:
                declared = response.content_length
                if declared is not None and declared > max_bytes:
                    raise too_large(max_bytes, upstream, route, declared)
                chunks: list[bytes] = []
                size = 0
                while chunk := await response.content.readany():
                    size += len(chunk)
                    if size > max_bytes:
                        raise too_large(max_bytes, upstream, route)
                    chunks.append(chunk)
                return Answer(response.status, response_headers(response.raw_headers), b"".join(chunks))
        except aiohttp.ClientError as exc:
            raise _translate(exc, upstream, route) from exc

    async def aclose(self) -> None:
        """Closes the pool; idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _translate(exc: aiohttp.ClientError, upstream: str, route: str) -> UpstreamTransportError:
    where = {"upstream": upstream, "route": route}
    # Order matters: ConnectionTimeoutError is a ServerConnectionError and a
    # TimeoutError, ClientConnectorError a ClientOSError.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeoutError(f"timed out connecting ({type(exc).__name__})", **where)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectError(f"cannot connect: {exc}", **where)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | aiohttp.ClientPayloadError):
        return UpstreamConnectionReset(f"connection dropped: {exc or type(exc).__name__}", **where)
    return UpstreamTransportError(f"transport failure: {exc or type(exc).__name__}", **where)
