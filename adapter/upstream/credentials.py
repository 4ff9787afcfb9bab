"""Upstream credentials: what headers prove the adapter's identity.

The seam the resilience issue extends (OAuth2 client credentials, refresh
tokens, JWT): the client asks a :class:`CredentialProvider` for headers before
each attempt and tells it when the upstream rejected them.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr

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
    """A static API key in a configurable header (``Authorization: Bearer``, ``X-API-Key``)."""

    def __init__(self, *, api_key: SecretStr, header: str = "Authorization", scheme: str = "Bearer") -> None:
        self._key = api_key
        self._header = header
        self._scheme = scheme

    async def auth_headers(self) -> list[tuple[str, str]]:
        secret = self._key.get_secret_value()
        return [(self._header, f"{self._scheme} {secret}" if self._scheme else secret)]

    async def rejected(self, sent: list[tuple[str, str]]) -> bool:
        return False  # a static key does not get better by asking again

    def describe(self) -> str:
        return f"api key in {self._header}" + (f" ({self._scheme})" if self._scheme else "")

    def __repr__(self) -> str:
        return f"ApiKeyCredentials({self.describe()})"
