"""Upstream credentials: what headers prove the adapter's identity.

The client asks a :class:`CredentialProvider` for headers before each attempt
and tells it when the upstream rejected them. Implementations: the static
:class:`ApiKeyCredentials` here (also used for static JWTs), and in
:mod:`adapter.auth` OAuth2 client credentials, OAuth2 refresh tokens and minted
JWTs. :func:`adapter.assembly.callers.build_credentials` picks one from
configuration. No implementation lets a secret reach ``repr``, logs or errors.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["CredentialProvider"]


class CredentialProvider(Protocol):
    def ready_headers(self) -> list[tuple[str, str]] | None:
        """The next attempt's headers when they are at hand (no renewal due), else
        None: then :meth:`auth_headers`. Awaiting a coroutine on every call cost
        ~3% of a call's CPU where the headers were at hand (docs/benchmarks.md)."""
        ...

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
