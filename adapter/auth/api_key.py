"""A static API key (or a static JWT) sent in a header on every request."""

from __future__ import annotations

from pydantic import SecretStr

from adapter.upstream.secret_source import SecretSource

__all__ = ["ApiKeyCredentials"]


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

    def ready_headers(self) -> list[tuple[str, str]]:
        return [(self._header, self._render(self._key.get()))]

    async def auth_headers(self) -> list[tuple[str, str]]:
        return self.ready_headers()

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
