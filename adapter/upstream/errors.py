"""Failures of an upstream call, translated from httpx/aiohttp at one boundary.

::

    UpstreamError
    ├── UpstreamStatusError        the upstream answered 4xx/5xx (or an unfollowed 3xx)
    ├── UpstreamTransportError     no usable answer
    │   ├── UpstreamConnectError       could not connect (refused, DNS, TLS)
    │   ├── UpstreamTimeoutError       the adapter's own connect bound passed
    │   └── UpstreamConnectionReset    the connection dropped mid-answer
    ├── UpstreamResponseTooLarge   the answer passed max_response_bytes
    ├── UpstreamRedirectBlocked    a redirect pointed off the upstream's host
    ├── UpstreamMalformedResponse  a success that is not the JSON the proto describes
    └── CredentialSetRefused       the caller has no usable credential set (not sent)
    CallDeadlineExceeded           the caller's deadline passed (not an upstream fault)
"""

from __future__ import annotations

from .messages import UpstreamResponse

__all__ = [
    "CallDeadlineExceeded",
    "CredentialError",
    "CredentialSetRefused",
    "UpstreamConnectError",
    "UpstreamConnectionReset",
    "UpstreamError",
    "UpstreamMalformedResponse",
    "UpstreamRedirectBlocked",
    "UpstreamResponseTooLarge",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
    "UpstreamTransportError",
]


class UpstreamError(Exception):
    """Base of upstream failures. ``retriable`` says whether a retry may help."""

    retriable = False
    #: Short machine-readable reason, used as ``ErrorInfo.reason``.
    reason = "UPSTREAM_ERROR"

    def __init__(self, message: str, *, upstream: str = "", route: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.upstream = upstream
        self.route = route
        self.request_id = request_id


class UpstreamStatusError(UpstreamError):
    reason = "UPSTREAM_HTTP_ERROR"

    def __init__(
        self, response: UpstreamResponse, *, upstream: str = "", route: str = "", path: str = ""
    ) -> None:
        super().__init__(
            f"upstream answered HTTP {response.status}",
            upstream=upstream,
            route=route,
            request_id=response.request_id,
        )
        self.response = response
        #: The concrete upstream path (``/v1/alerts/alt_1``), when known.
        self.path = path
        self.retriable = response.status in (429, 502, 503, 504)


class UpstreamTransportError(UpstreamError):
    retriable = True
    reason = "UPSTREAM_UNREACHABLE"


class UpstreamConnectError(UpstreamTransportError):
    reason = "UPSTREAM_CONNECT_FAILED"


class UpstreamTimeoutError(UpstreamTransportError):
    reason = "UPSTREAM_TIMEOUT"


class UpstreamConnectionReset(UpstreamTransportError):
    reason = "UPSTREAM_CONNECTION_RESET"


class UpstreamResponseTooLarge(UpstreamError):
    reason = "UPSTREAM_RESPONSE_TOO_LARGE"


class UpstreamRedirectBlocked(UpstreamError):
    reason = "UPSTREAM_REDIRECT_BLOCKED"


class UpstreamMalformedResponse(UpstreamError):
    reason = "UPSTREAM_MALFORMED_RESPONSE"

    def __init__(self, message: str, *, reason: str = "", **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        if reason:
            self.reason = reason


class CallDeadlineExceeded(Exception):
    """The caller's deadline (or the adapter's default bound) passed."""

    def __init__(self, route: str, budget_seconds: float | None) -> None:
        bound = f"{budget_seconds:.3f}s" if budget_seconds is not None else "the deadline"
        super().__init__(f"{route}: deadline exceeded after {bound}")
        self.route = route


class CredentialError(UpstreamError):
    """No usable credential (a secret file is unreadable, a token endpoint failed...);
    its subclasses are in :mod:`adapter.auth.errors`."""

    reason = "UPSTREAM_CREDENTIALS_UNAVAILABLE"


class CredentialSetRefused(UpstreamError):
    """The policy binds the caller to a credential set this upstream does not have,
    or to none where one is required: PERMISSION_DENIED, and no request is sent
    (never another tenant's credentials instead)."""

    def __init__(
        self, message: str, *, reason: str, upstream: str, route: str, principal: str, credential_set: str
    ) -> None:
        super().__init__(message, upstream=upstream, route=route)
        self.reason = reason
        self.principal = principal
        self.credential_set = credential_set
