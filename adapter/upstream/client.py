"""One pooled HTTP client per upstream: credentials, deadline, size cap, redirects.

Every attempt is bounded by an absolute deadline (the caller's gRPC deadline,
or the upstream's default bound when the caller sets none). When it passes, the
in-flight request is cancelled, which closes its connection, so the upstream
sees the client go away instead of finishing work nobody waits for.

httpx and aiohttp exceptions are translated here, and only here, into
:mod:`adapter.upstream.errors` (always ``raise ... from exc``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterator

import aiohttp
import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import TracerProvider

from adapter.config.settings import UpstreamSettings

from .credentials import CredentialProvider
from .errors import (
    CallDeadlineExceeded,
    UpstreamConnectError,
    UpstreamConnectionReset,
    UpstreamError,
    UpstreamRedirectBlocked,
    UpstreamResponseTooLarge,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamTransportError,
)
from .messages import UpstreamRequest, UpstreamResponse
from .transport import build_transport

__all__ = ["UpstreamClient", "raise_for_status"]

logger = logging.getLogger(__name__)

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-correlation-id", "x-amzn-requestid")


def raise_for_status(response: UpstreamResponse, *, upstream: str, route: str, path: str = "") -> None:
    """Raises UpstreamStatusError for anything but a 2xx."""
    if not 200 <= response.status < 300:
        raise UpstreamStatusError(response, upstream=upstream, route=route, path=path)


class UpstreamClient:
    """Sends bound requests to one upstream.

    Example::

        client = UpstreamClient("openframe", settings, credentials=creds)
        response = await client.send(request, deadline=loop.time() + 2.0)
        await client.aclose()
    """

    def __init__(
        self,
        name: str,
        settings: UpstreamSettings,
        *,
        credentials: CredentialProvider,
        tracer_provider: TracerProvider | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._credentials = credentials
        base = httpx.URL(str(settings.base_url))
        self._origin = (base.scheme, base.host, base.port)
        self._client = httpx.AsyncClient(
            base_url=base,
            transport=transport or build_transport(settings),
            follow_redirects=True,
            max_redirects=settings.max_redirects,
            # The deadline bounds the whole call; only connecting has its own bound.
            timeout=httpx.Timeout(None, connect=settings.connect_timeout_seconds),
            event_hooks={"request": [self._refuse_foreign_host]},
            trust_env=False,
        )
        HTTPXClientInstrumentor.instrument_client(self._client, tracer_provider=tracer_provider)
        self._closed = False

    @property
    def default_timeout(self) -> float:
        return self.settings.default_timeout_seconds

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        """One call (plus one re-authentication on 401 when the credentials can
        refresh). ``deadline`` is absolute, on the event loop's clock."""
        loop = asyncio.get_running_loop()
        budget = deadline - loop.time()
        try:
            async with asyncio.timeout_at(deadline):
                auth = await self._credentials.auth_headers()
                response = await self._attempt(request, auth)
                if response.status == 401 and await self._credentials.rejected(auth):
                    auth = await self._credentials.auth_headers()
                    response = await self._attempt(request, auth)
                    response = dataclasses.replace(response, attempts=2)
                return response
        except TimeoutError:
            raise CallDeadlineExceeded(request.route, budget) from None

    async def _attempt(self, request: UpstreamRequest, auth: list[tuple[str, str]]) -> UpstreamResponse:
        http_request = self._client.build_request(
            request.method,
            request.path,
            params=list(request.query),
            content=request.body,
            headers=[*request.headers, *auth],
        )
        with self._translate_errors(request):
            response = await self._client.send(http_request, stream=True)
            try:
                body = await self._read_capped(response, request)
            finally:
                await response.aclose()
        request_id = next((response.headers[h] for h in _REQUEST_ID_HEADERS if h in response.headers), "")
        return UpstreamResponse(
            status=response.status_code,
            headers=response.headers,
            body=body,
            request_id=request_id,
            max_server_delay=self.settings.resilience.max_server_delay_seconds,
        )

    async def _read_capped(self, response: httpx.Response, request: UpstreamRequest) -> bytes:
        cap = self.settings.max_response_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise UpstreamResponseTooLarge(
                f"upstream answer of {declared} bytes exceeds the {cap}-byte cap",
                upstream=self.name,
                route=request.route,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise UpstreamResponseTooLarge(
                    f"upstream answer exceeds the {cap}-byte cap",
                    upstream=self.name,
                    route=request.route,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def _refuse_foreign_host(self, request: httpx.Request) -> None:
        # Called for the first request and every redirect hop: credentials must
        # never follow a redirect to another origin.
        if (request.url.scheme, request.url.host, request.url.port) != self._origin:
            raise UpstreamRedirectBlocked(
                f"refused redirect to {request.url.scheme}://{request.url.host}"
                f"{':' + str(request.url.port) if request.url.port else ''} (not the upstream's origin)",
                upstream=self.name,
            )

    @contextlib.contextmanager
    def _translate_errors(self, request: UpstreamRequest) -> Iterator[None]:
        where = {"upstream": self.name, "route": request.route}
        try:
            yield
        except UpstreamError as exc:
            exc.route = exc.route or request.route
            raise
        except httpx.TooManyRedirects as exc:
            raise UpstreamRedirectBlocked(
                f"more than {self.settings.max_redirects} redirects", **where
            ) from exc
        except httpx.TransportError as exc:
            # httpx-aiohttp maps aiohttp's errors coarsely (a refused connection or a
            # dropped one surfaces as ConnectTimeout): classify by the original cause.
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectorError):
                raise UpstreamConnectError(f"cannot connect: {cause}", **where) from exc
            if isinstance(
                cause, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | aiohttp.ClientPayloadError
            ):
                raise UpstreamConnectionReset(f"connection dropped: {cause}", **where) from exc
            raise self._translate_httpx(exc, where) from exc

    def _translate_httpx(self, exc: httpx.TransportError, where: dict[str, str]) -> UpstreamError:
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamTimeoutError(f"timed out connecting ({type(exc).__name__})", **where)
        if isinstance(exc, httpx.ConnectError):
            return UpstreamConnectError(f"cannot connect: {exc}", **where)
        if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError | httpx.WriteError):
            return UpstreamConnectionReset(
                f"connection dropped mid-answer: {exc or type(exc).__name__}", **where
            )
        return UpstreamTransportError(f"transport failure: {exc or type(exc).__name__}", **where)

    async def aclose(self) -> None:
        """Closes the pool; idempotent."""
        if not self._closed:
            self._closed = True
            await self._client.aclose()
