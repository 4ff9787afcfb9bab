"""The values exchanged with an upstream: one request, one buffered response."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any

from adapter.call_values import call_value

from .response_headers import ResponseHeaders
from .server_delay import DEFAULT_MAX_SERVER_DELAY, parse_retry_after

__all__ = ["UpstreamRequest", "UpstreamResponse"]


@call_value
class UpstreamRequest:
    """An upstream REST call, fully bound (path rendered, body encoded)."""

    method: str
    path: str
    #: ``GET /v1/alerts/{alert_id}``: the endpoint, for logs, spans and metrics.
    route: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    #: Whether repeating the call is safe (retries, issue #3).
    idempotent: bool = False
    #: Sent as ``Idempotency-Key``; makes a POST retryable.
    idempotency_key: str = ""
    #: A POST without effects (a GraphQL query): cacheable like a GET, keyed by its body too.
    read_only: bool = False
    #: The client-side quota it counts against: ``""`` the upstream's REST quota,
    #: ``"graphql"`` its GraphQL one (``upstreams.<name>.graphql.rate_limit``).
    quota: str = ""
    #: Tells a 200 whose body is a failure (a GraphQL answer with ``errors``), which
    #: the cache must not keep. None: a 200 is a success.
    answer_is_failure: Callable[[bytes], bool] | None = None


@call_value
class UpstreamResponse:
    """A complete upstream answer (body read within the size cap)."""

    status: int
    headers: ResponseHeaders
    body: bytes
    #: The upstream's ``X-Request-Id`` (or similar), for RequestInfo.
    request_id: str = ""
    #: Attempts it took (retries add to this).
    attempts: int = 1
    extra: dict[str, str] = field(default_factory=dict)
    #: Longest wait the upstream may ask for (``resilience.max_server_delay_seconds``).
    max_server_delay: float = DEFAULT_MAX_SERVER_DELAY
    #: Set by the response cache on the answers it keeps: what each method decoded from
    #: this body, so a cache hit is copied rather than decoded again (None: not kept).
    decoded: dict[object, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def content_type(self) -> str:
        value: str = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()

    def server_delay(self) -> float | None:
        """Seconds the ``Retry-After`` header asks to wait, within ``max_server_delay``."""
        return parse_retry_after(self.headers.get("retry-after"), cap=self.max_server_delay)
