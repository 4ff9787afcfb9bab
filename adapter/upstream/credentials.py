"""Upstream credentials: what headers prove the adapter's identity.

The client asks a :class:`CredentialProvider` for headers before each attempt
and tells it when the upstream rejected them. Implementations: the static
:class:`ApiKeyCredentials` here (also used for static JWTs), and in
:mod:`adapter.auth` OAuth2 client credentials, OAuth2 refresh tokens and minted
JWTs. :func:`adapter.upstream.factory.build_credentials` picks one from
configuration. No implementation lets a secret reach ``repr``, logs or errors.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr

from adapter.auth.secret_source import SecretSource

__all__ = ["ApiKeyCredentials", "CredentialProvider"]


class CredentialProvider(Protocol):
    async def auth_headers(self) -> list[tuple[str, str]]:
        """Headers to add to the next attempt."""
        ...

    async def rejected(self, sent: list[tuple[str, str]]) -> bool:
        """The upstream answered 401 to ``sent``; True if fresh credentials are
        now available and one more attempt is worthwhile."""
        ...

    def describe(self) -> str:
        """What kind of credential this is, for logs (never the secret)."""
        ...


class ApiKeyCredentials:
    """A static secret in a configurable header (``Authorization: Bearer``, ``X-API-Key``).

    Given as a :class:`SecretSource` backed by a file, a rotated key is picked up
    without a restart: within the source's reload interval, or at once after a 401.
    """

    def __init__(
        self, *, api_key: SecretStr | SecretSource, header: str = "Authorization", scheme: str = "Bearer"
    ) -> None:
        self._key = api_key if isinstance(api_key, SecretSource) else SecretSource.inline(api_key)
        self._header = header
        self._scheme = scheme

    async def auth_headers(self) -> list[tuple[str, str]]:
        return [(self._header, self._render(self._key.get()))]

    async def rejected(self, sent: list[tuple[str, str]]) -> bool:
        # A static key does not get better by asking again, unless it was rotated.
        current = self._render(self._key.get(recheck=True))
        return (self._header, current) not in sent

    def _render(self, secret: str) -> str:
        return f"{self._scheme} {secret}" if self._scheme else secret

    def describe(self) -> str:
        where = f", from {self._key.path}" if self._key.path else ""
        return f"api key in {self._header}" + (f" ({self._scheme})" if self._scheme else "") + where

    def __repr__(self) -> str:
        return f"ApiKeyCredentials({self.describe()})"
