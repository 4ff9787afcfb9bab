"""One pooled HTTP client per upstream: credentials, deadline, size cap, redirects.

Every attempt is bounded by an absolute deadline (the caller's gRPC deadline,
or the upstream's default bound when the caller sets none). When it passes, the
in-flight request is cancelled, which closes its connection, so the upstream
sees the client go away instead of finishing work nobody waits for.

Redirects are followed here, at most ``max_redirects``, and only within the
upstream's own origin: credentials never follow a redirect elsewhere. Each
request (each redirect hop) gets a CLIENT span whose context travels as
``traceparent``. The HTTP library's errors are translated below this, in
:mod:`adapter.upstream.transport`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from urllib.parse import SplitResult, urlencode, urljoin, urlsplit

import httpx
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from yarl import URL

from adapter.config.settings import UpstreamSettings
from adapter.telemetry.upstream_spans import UpstreamSpans

from .credentials import CredentialProvider
from .deadline_timer import DeadlineTimer
from .errors import CallDeadlineExceeded, UpstreamRedirectBlocked, UpstreamStatusError
from .messages import UpstreamRequest, UpstreamResponse
from .transport import Answer, build_transport

__all__ = ["UpstreamClient", "raise_for_status"]

logger = logging.getLogger(__name__)

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-correlation-id", "x-amzn-requestid")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def raise_for_status(response: UpstreamResponse, *, upstream: str, route: str, path: str = "") -> None:
    """Raises UpstreamStatusError for anything but a 2xx."""
    if not 200 <= response.status < 300:
        raise UpstreamStatusError(response, upstream=upstream, route=route, path=path)


def _origin(url: SplitResult) -> tuple[str, str, int | None]:
    return (url.scheme, url.hostname or "", url.port or _DEFAULT_PORTS.get(url.scheme))


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
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._credentials = credentials
        base = urlsplit(str(settings.base_url))
        self._origin = _origin(base)
        self._base = str(settings.base_url).rstrip("/")
        self._http = build_transport(settings, httpx_transport=transport)
        self._spans = UpstreamSpans(
            tracer_provider, origin=base, upstream=name, meter_provider=meter_provider
        )
        #: One loop timer for the deadlines of every call in flight (see the module).
        self._deadlines = DeadlineTimer()
        self._closed = False

    @property
    def default_timeout(self) -> float:
        return self.settings.default_timeout_seconds

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        """One call (plus one re-authentication on 401 when the credentials can
        refresh). ``deadline`` is absolute, on the event loop's clock.

        One coroutine for the attempts, their redirects and exchanges: a coroutine of
        its own for each of them cost ~1% of a call's CPU in place (docs/benchmarks.md);
        what is not awaited is in the plain methods below."""
        loop = asyncio.get_running_loop()
        budget = deadline - loop.time()
        expiry = self._deadlines.start(deadline)
        route = request.route
        try:
            auth = self._credentials.ready_headers() or await self._credentials.auth_headers()
            for attempt in (1, 2):
                url, method, body = self._url_of(request), request.method, request.body
                headers = [*request.headers, *auth]
                for hop in range(self.settings.max_redirects + 1):
                    sent = list(headers)
                    exchange = self._spans.start(method, url, route, sent)
                    try:
                        answer = await self._http.exchange(
                            method,
                            url,
                            sent,
                            body,
                            max_bytes=self.settings.max_response_bytes,
                            upstream=self.name,
                            route=route,
                        )
                    except BaseException as exc:  # the span ends whatever happened, then it propagates
                        self._spans.failed(exchange, exc)
                        raise
                    self._spans.answered(exchange, answer.status)
                    location = answer.headers.get("location") if answer.status in _REDIRECTS else None
                    if location is None:
                        break
                    url, method, body, headers = self._redirected(
                        answer.status, url, location, hop, method, body, headers, route
                    )
                response = self._response(answer)
                if attempt == 1 and response.status == 401 and await self._credentials.rejected(auth):
                    auth = await self._credentials.auth_headers()
                    continue
                return response if attempt == 1 else dataclasses.replace(response, attempts=2)
            raise AssertionError("unreachable")  # (the second attempt returns)
        except asyncio.CancelledError:
            if self._deadlines.expired(expiry):
                raise CallDeadlineExceeded(route, budget) from None
            raise
        except TimeoutError:  # (as under asyncio.timeout_at, which this replaced)
            raise CallDeadlineExceeded(route, budget) from None
        finally:
            self._deadlines.forget(expiry)

    def _url_of(self, request: UpstreamRequest) -> str:
        url = self._base + request.path
        return url + "?" + urlencode(request.query) if request.query else url

    def _redirected(
        self,
        status: int,
        url: str,
        location: str,
        hop: int,
        method: str,
        body: bytes | None,
        headers: list[tuple[str, str]],
        route: str,
    ) -> tuple[str, str, bytes | None, list[tuple[str, str]]]:
        """The request that follows a redirect: URL, method, body and headers."""
        if hop == self.settings.max_redirects:
            raise UpstreamRedirectBlocked(
                f"more than {self.settings.max_redirects} redirects", upstream=self.name, route=route
            )
        url = self._follow(url, location, route)
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            # As browsers and httpx do: the next request is a GET without the body.
            return url, "GET", None, [h for h in headers if h[0].lower() != "content-type"]
        return url, method, body, headers

    def _response(self, answer: Answer) -> UpstreamResponse:
        request_id = ""
        for name in _REQUEST_ID_HEADERS:  # the first one sent
            value = answer.headers.get(name)
            if value is not None:
                request_id = value
                break
        return UpstreamResponse(
            status=answer.status,
            headers=answer.headers,
            body=answer.body,
            request_id=request_id,
            max_server_delay=self.settings.resilience.max_server_delay_seconds,
        )

    def _follow(self, url: str, location: str, route: str) -> str:
        # A Location may hold characters a URL must carry percent-encoded; yarl
        # encodes them (and leaves existing escapes alone), since the exchange
        # sends the URL as it is.
        target = str(URL(urljoin(url, location)))
        parts = urlsplit(target)
        if _origin(parts) != self._origin:
            port = f":{parts.port}" if parts.port else ""
            raise UpstreamRedirectBlocked(
                f"refused redirect to {parts.scheme}://{parts.hostname}{port} (not the upstream's origin)",
                upstream=self.name,
                route=route,
            )
        return target

    async def aclose(self) -> None:
        """Closes the pool; idempotent."""
        if not self._closed:
            self._closed = True
            await self._http.aclose()
