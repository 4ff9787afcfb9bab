"""Failures of obtaining credentials (the upstream's API was not asked).

::

    UpstreamError (adapter.upstream.errors)
    └── CredentialError (adapter.upstream.errors)   base: no usable credential
        ├── TokenEndpointUnavailable    the token endpoint is unreachable or answered 5xx/429 (retriable)
        ├── TokenRejected               the token endpoint refused the client or grant (invalid_client...)
        └── LoginRequired               no refresh token stored: run ``python -m adapter login <upstream>``

Messages name the endpoint and the RFC 6749 ``error`` code, never a secret.
"""

from __future__ import annotations

from adapter.upstream.errors import CredentialError

__all__ = ["CredentialError", "LoginRequired", "TokenEndpointUnavailable", "TokenRejected"]


class TokenEndpointUnavailable(CredentialError):
    retriable = True
    reason = "UPSTREAM_TOKEN_ENDPOINT_UNAVAILABLE"

    def __init__(self, message: str, *, upstream: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, upstream=upstream)
        self.retry_after = retry_after


class TokenRejected(CredentialError):
    reason = "UPSTREAM_TOKEN_REJECTED"

    def __init__(self, message: str, *, upstream: str = "", error: str = "") -> None:
        super().__init__(message, upstream=upstream)
        #: The RFC 6749 error code (``invalid_client``, ``invalid_grant``...).
        self.error = error


class LoginRequired(CredentialError):
    reason = "UPSTREAM_LOGIN_REQUIRED"
