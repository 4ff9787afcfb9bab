"""OAuth2 client credentials (RFC 6749 section 4.4), as OCTOSPINE documents it."""

from __future__ import annotations

import time
from collections.abc import Callable

from .renewing import BearerToken, RenewingCredentials, expiry, renew_time
from .token_endpoint import TokenEndpoint

__all__ = ["ClientCredentials"]


class ClientCredentials(RenewingCredentials):
    """Access tokens from the client credentials grant, cached until
    ``refresh_margin`` before they expire and renewed once on a 401.

    Example::

        creds = ClientCredentials(TokenEndpoint(url, client_id="c", client_secret=secret))
        headers = await creds.auth_headers()   # [("Authorization", "Bearer ...")]
    """

    def __init__(
        self,
        endpoint: TokenEndpoint,
        *,
        scope: str = "",
        refresh_margin: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock=clock)
        self.endpoint = endpoint
        self._scope = scope
        self._margin = refresh_margin

    async def _obtain(self, rejected: BearerToken | None) -> BearerToken:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        # After a rejection the client secret may have been rotated: look at once.
        grant = await self.endpoint.request(form, recheck_secret=rejected is not None)
        now = self._clock()
        return BearerToken(
            grant.access_token,
            renew_time(now, grant.expires_in, self._margin),
            expires_at=expiry(now, grant.expires_in),
        )

    def _inputs(self) -> object:
        return self.endpoint.secret_version()

    def describe(self) -> str:
        return f"OAuth2 client credentials of {self.endpoint.client_id!r} from {self.endpoint.url}"
