"""Access tokens from a stored, rotating refresh token (OpenFrame's authorization code flow).

The refresh token comes from ``python -m adapter login <upstream>``
(:mod:`adapter.auth.login`). Each refresh rotates it: the new one is written to
the token file before the new access token is used, so a crash never leaves the
file holding a spent token. The file is re-read on every renewal, so running the
login again (or another process refreshing) takes effect without a restart.

A vendor may grant no refresh token: the login's access token is then used until it
expires or is refused, after which calls fail with :class:`LoginRequired` (naming the
login command) until the login is run again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from .errors import LoginRequired, TokenRejected
from .renewing import BearerToken, RenewingCredentials, expiry, renew_time
from .token_endpoint import TokenEndpoint
from .token_file import StoredTokens, TokenFile, TokenFileError

__all__ = ["RefreshTokenCredentials"]

logger = logging.getLogger(__name__)


class RefreshTokenCredentials(RenewingCredentials):
    """Bearer tokens renewed with the refresh token stored in ``token_file``."""

    def __init__(
        self,
        endpoint: TokenEndpoint,
        token_file: TokenFile,
        *,
        upstream: str,
        refresh_margin: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self.endpoint = endpoint
        self.token_file = token_file
        self._upstream = upstream
        self._margin = refresh_margin
        self._wall_clock = wall_clock

    async def _obtain(self, rejected: BearerToken | None) -> BearerToken:
        async with self.token_file.locked():
            stored = self._read()
            if not stored.refresh_token:
                return self._until_relogin(stored, rejected)
            usable = self._usable_access_token(stored, rejected)
            if usable is not None:
                return usable
            try:
                grant = await self.endpoint.request(
                    {"grant_type": "refresh_token", "refresh_token": stored.refresh_token}
                )
            except TokenRejected as exc:
                if exc.error == "invalid_grant":
                    raise LoginRequired(
                        f"the stored refresh token was refused ({exc}); run "
                        f"`python -m adapter login {self._upstream}` again",
                        upstream=self._upstream,
                    ) from None
                raise
            expires_at = self._wall_clock() + grant.expires_in if grant.expires_in else 0.0
            self.token_file.write(
                dataclasses.replace(
                    stored,
                    # Vendors that do not rotate answer without a refresh_token: keep ours.
                    refresh_token=grant.refresh_token or stored.refresh_token,
                    access_token=grant.access_token,
                    access_token_expires_at=expires_at,
                )
            )
        logger.info("%s: access token refreshed, refresh token rotated and stored", self.describe())
        now = self._clock()
        return BearerToken(
            grant.access_token,
            renew_time(now, grant.expires_in, self._margin),
            expires_at=expiry(now, grant.expires_in),
        )

    def _until_relogin(self, stored: StoredTokens, rejected: BearerToken | None) -> BearerToken:
        """The vendor granted no refresh token: the login's access token serves until it
        expires (or is refused), then only a new login helps."""
        expires_at = stored.access_token_expires_at
        if stored.access_token and (rejected is None or stored.access_token != rejected.value):
            lifetime = expires_at - self._wall_clock() if expires_at else None
            if lifetime is None or lifetime > 0:
                # Used to the end (no renewal margin): nothing could renew it earlier.
                renew_at = None if lifetime is None else self._clock() + lifetime
                return BearerToken(stored.access_token, renew_at)
        raise LoginRequired(
            f"the access token of the last login of {self._upstream} expired and the vendor granted no "
            f"refresh token; run `python -m adapter login {self._upstream}` again",
            upstream=self._upstream,
        )

    def _read(self) -> StoredTokens:
        try:
            return self.token_file.read()
        except TokenFileError as exc:
            raise LoginRequired(
                f"{exc}; run `python -m adapter login {self._upstream}`", upstream=self._upstream
            ) from None

    def _usable_access_token(self, stored: StoredTokens, rejected: BearerToken | None) -> BearerToken | None:
        """The stored access token when it is still good and not the one just refused
        (after a restart, or when another process refreshed first)."""
        if not stored.access_token or (rejected is not None and stored.access_token == rejected.value):
            return None
        if self._token is not None and stored.access_token == self._token.value:
            return None  # ours, and due for renewal
        if not stored.access_token_expires_at:
            return None
        lifetime = stored.access_token_expires_at - self._wall_clock()
        renew_at = renew_time(self._clock(), lifetime, self._margin)
        if lifetime <= 0 or renew_at is None or renew_at <= self._clock():
            return None
        return BearerToken(stored.access_token, renew_at, expires_at=expiry(self._clock(), lifetime))

    def _inputs(self) -> object:
        return self.endpoint.secret_version(), self.token_file.stamp()

    def describe(self) -> str:
        return f"OAuth2 refresh token of {self.endpoint.client_id!r} from {self.token_file.path}"
