"""OAuth2 state of one vendor: authorization codes, access tokens, rotating refresh tokens.

Tokens expire after `ttl_s`; an expired token is remembered so it answers 401
``token_expired`` rather than ``unauthorized``. `expire_all` lets a test expire every token
without waiting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from simulator.config import Vendor
from simulator.wire import new_token

TokenState = Literal["valid", "expired", "unknown"]


class OAuthError(Exception):
    """An RFC 6749 error answer: ``{"error": "invalid_grant", "error_description": ...}``."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass
class AccessToken:
    """An issued bearer token."""

    token: str
    client_id: str
    scope: str
    expires_at: float


@dataclass
class AuthorizationCode:
    """A code from `/v1/oauth/authorize`, single use, with its PKCE challenge if any."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    challenge_method: str | None
    expires_at: float
    used: bool = False


@dataclass
class RefreshToken:
    """A refresh token; each use rotates it (the old one stops working)."""

    token: str
    client_id: str
    scope: str
    revoked: bool = False


def pkce_challenge(verifier: str, method: str = "S256") -> str:
    """The code challenge of `verifier` (RFC 7636): S256 or plain."""
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class TokenStore:
    """Issues and checks one vendor's OAuth2 tokens."""

    def __init__(
        self,
        vendor: Vendor,
        *,
        ttl_s: float,
        code_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.vendor = vendor
        self.ttl_s = ttl_s
        self.code_ttl_s = code_ttl_s
        self._clock = clock
        self._prefix = "ofat_" if vendor == "openframe" else "osat_"
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.token_requests = 0
        self.issued = 0

    def issue(self, client_id: str, scope: str, *, refresh: bool) -> tuple[AccessToken, str | None]:
        """A new access token (and refresh token when `refresh`)."""
        access = AccessToken(new_token(self._prefix), client_id, scope, self._clock() + self.ttl_s)
        self.access_tokens[access.token] = access
        self.issued += 1
        refresh_token = None
        if refresh:
            refresh_token = new_token("rt_")
            self.refresh_tokens[refresh_token] = RefreshToken(refresh_token, client_id, scope)
        return access, refresh_token

    def lookup(self, token: str) -> tuple[TokenState, AccessToken | None]:
        """Whether `token` is a valid, expired or unknown access token."""
        access = self.access_tokens.get(token)
        if access is None:
            return "unknown", None
        return ("valid" if self._clock() < access.expires_at else "expired"), access

    def expire_all(self) -> None:
        """Expires every access token now."""
        now = self._clock()
        for access in self.access_tokens.values():
            access.expires_at = min(access.expires_at, now)

    def new_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scope: str,
        challenge: str | None,
        challenge_method: str | None,
    ) -> str:
        """Records and returns a fresh authorization code."""
        code = new_token("code_")
        self.codes[code] = AuthorizationCode(
            code,
            client_id,
            redirect_uri,
            scope,
            challenge,
            challenge_method,
            self._clock() + self.code_ttl_s,
        )
        return code

    def redeem_code(
        self, code: str, *, client_id: str, redirect_uri: str, verifier: str | None
    ) -> AuthorizationCode:
        """Checks and consumes a code (RFC 6749 4.1.3, RFC 7636 4.6)."""
        grant = self.codes.get(code)
        if grant is None or grant.used or self._clock() >= grant.expires_at:
            raise OAuthError("invalid_grant", "authorization code is invalid, used or expired")
        if grant.client_id != client_id:
            raise OAuthError("invalid_grant", "authorization code was issued to another client")
        if grant.redirect_uri != redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization")
        if grant.challenge is not None:
            if not verifier:
                raise OAuthError("invalid_grant", "code_verifier is required")
            expected = pkce_challenge(verifier, grant.challenge_method or "plain")
            if not hmac.compare_digest(expected, grant.challenge):
                raise OAuthError("invalid_grant", "code_verifier does not match the challenge")
        grant.used = True
        return grant

    def rotate_refresh(self, token: str, *, client_id: str) -> RefreshToken:
        """Consumes a refresh token (it stops working) and returns it."""
        refresh = self.refresh_tokens.get(token)
        if refresh is None or refresh.revoked:
            raise OAuthError("invalid_grant", "refresh token is invalid or was already used")
        if refresh.client_id != client_id:
            raise OAuthError("invalid_grant", "refresh token was issued to another client")
        refresh.revoked = True
        return refresh

    def reset(self) -> None:
        """Forgets every code and token."""
        self.access_tokens.clear()
        self.refresh_tokens.clear()
        self.codes.clear()
        self.token_requests = 0
        self.issued = 0
