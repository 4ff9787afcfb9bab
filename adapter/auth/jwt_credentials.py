"""JWT bearer credentials minted and signed by the adapter (PyJWT).

A static JWT is just a bearer secret (:class:`~adapter.upstream.credentials.ApiKeyCredentials`
with scheme ``Bearer``); this module covers the minted kind: short-lived tokens
signed with a configured key, re-minted before expiry, when the key file is
rotated, and once after a 401.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from adapter.upstream.secret_source import SecretSource

from .renewing import BearerToken, RenewingCredentials

__all__ = ["MintedJwtCredentials"]


class MintedJwtCredentials(RenewingCredentials):
    """Signs ``{iss, sub, aud, iat, nbf, exp, jti, **claims}`` with ``key``.

    Example::

        creds = MintedJwtCredentials(SecretSource.from_file(pem), algorithm="RS256",
                                     issuer="mesh-adapter", audience="https://api.openframe.io")
    """

    def __init__(
        self,
        key: SecretSource,
        *,
        algorithm: str = "RS256",
        key_id: str = "",
        issuer: str = "",
        subject: str = "",
        audience: str = "",
        lifetime: float = 300.0,
        refresh_margin: float = 30.0,
        claims: Mapping[str, Any] | None = None,
        header: str = "Authorization",
        scheme: str = "Bearer",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(header=header, scheme=scheme, clock=clock)
        self._key = key
        self._algorithm = algorithm
        self._key_id = key_id
        self._registered = {"iss": issuer, "sub": subject, "aud": audience}
        self._lifetime = lifetime
        self._margin = min(refresh_margin, lifetime / 2)
        self._claims = dict(claims or {})
        self._wall_clock = wall_clock
        self._key_version = 0

    def _stale(self, token: BearerToken) -> bool:
        self._key.get()  # notices a rotated key file
        return super()._stale(token) or self._key.version != self._key_version

    async def _obtain(self, rejected: BearerToken | None) -> BearerToken:
        key = self._key.get(recheck=rejected is not None)
        self._key_version = self._key.version
        now = int(self._wall_clock())
        payload: dict[str, Any] = {
            **self._claims,
            **{k: v for k, v in self._registered.items() if v},
            "iat": now,
            "nbf": now,
            "exp": now + int(self._lifetime),
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self._key_id} if self._key_id else None
        token = jwt.encode(payload, key, algorithm=self._algorithm, headers=headers)
        return BearerToken(token, self._clock() + self._lifetime - self._margin)

    def describe(self) -> str:
        return f"minted JWT ({self._algorithm}{', kid ' + self._key_id if self._key_id else ''})"
