"""Upstream credentials beyond static API keys: OAuth2 client credentials, OAuth2
authorization code with rotating refresh tokens (and its login command), minted
JWTs, and secrets re-read from files when rotated.

Public names are re-exported here; each lives in a module of its own.
``adapter.auth.jwt_credentials`` (PyJWT) is imported only where minted JWTs are
configured, so the rest does not need PyJWT installed.
"""

from __future__ import annotations

from adapter.upstream.secret_source import SecretSource

from .client_credentials import ClientCredentials
from .errors import CredentialError, LoginRequired, TokenEndpointUnavailable, TokenRejected
from .refresh_token import RefreshTokenCredentials
from .token_endpoint import TokenEndpoint, TokenGrant
from .token_file import StoredTokens, TokenFile, TokenFileError

__all__ = [
    "ClientCredentials",
    "CredentialError",
    "LoginRequired",
    "RefreshTokenCredentials",
    "SecretSource",
    "StoredTokens",
    "TokenEndpoint",
    "TokenEndpointUnavailable",
    "TokenFile",
    "TokenFileError",
    "TokenGrant",
    "TokenRejected",
]
