"""Bearer JWTs checked against a JWKS: signature, ``iss``, ``aud``, ``exp``/``nbf``
(with a small leeway) and an algorithm allowlist.

PyJWT does the cryptography and the claim checks. The key set is ours to keep:
PyJWT's ``PyJWKClient`` fetches with blocking ``urllib`` on the caller's thread,
which would stall the event loop, so a URL JWKS is fetched here with httpx, cached
for ``jwks_cache_seconds``, and fetched again early when a token names a ``kid``
the cache lacks (a key rotation), at most once per ``_MIN_REFETCH`` seconds so
tokens with random ``kid`` values cannot make the adapter hammer the IdP. A file
JWKS is re-read when the file changes.

Refused outright: ``alg: none``, HMAC algorithms (a public key must never verify a
token), algorithms outside the allowlist, an algorithm that does not fit the named
key's type (checked here: PyJWT raises a bare ``TypeError`` for that, before any
signature is checked, so any caller could provoke it). Whatever else PyJWT raises on a
token is still a refusal, never an error of the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

from adapter.config.security import JwtSettings
from adapter.telemetry.repeated_lines import RepeatedLines

from .identity import Principal
from .reloading import ReloadingFile

__all__ = ["AuthenticationFailed", "JwtVerifier"]

logger = logging.getLogger(__name__)
#: A token that makes PyJWT itself fail can be sent again and again: a line per type,
#: then one per 10 s with a count.
_CRASH_LINES = RepeatedLines(logger)

_MIN_REFETCH = 30.0

#: The JWK ``kty`` each family of allowed algorithms verifies with (by the alg's prefix).
_KEY_TYPE_OF_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class AuthenticationFailed(Exception):
    """The caller's credentials are missing or invalid: UNAUTHENTICATED."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _key_set(raw: str | bytes) -> dict[str, PyJWK]:
    keys: dict[str, PyJWK] = {}
    for key in PyJWKSet.from_json(raw if isinstance(raw, str) else raw.decode()).keys:
        keys[key.key_id or ""] = key
    return keys


class JwtVerifier:
    """``await verify(token)`` -> Principal, or AuthenticationFailed."""

    def __init__(
        self,
        settings: JwtSettings,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        reload_interval: float = 2.0,
    ) -> None:
        self.settings = settings
        self._algorithms = list(settings.algorithms)
        self._clock = clock
        self._file: ReloadingFile[dict[str, PyJWK]] | None = None
        path = settings.jwks_file
        if path is not None:
            self._file = ReloadingFile(
                "JWKS", [path], lambda: _key_set(path.read_bytes()), interval=reload_interval
            )
        self._http = http
        self._url_keys: dict[str, PyJWK] = {}
        self._fetched_at = float("-inf")
        self._fetch_lock = asyncio.Lock()

    async def _keys(self, kid: str) -> Mapping[str, PyJWK]:
        if self._file is not None:
            return self._file.current()
        now = self._clock()
        stale = now - self._fetched_at > self.settings.jwks_cache_seconds
        unknown = kid not in self._url_keys and now - self._fetched_at > _MIN_REFETCH
        if stale or unknown:
            async with self._fetch_lock:
                if self._fetched_at < now:  # nobody fetched while we waited
                    await self._fetch()
        return self._url_keys

    async def _fetch(self) -> None:
        url = str(self.settings.jwks_url)
        client = self._http or httpx.AsyncClient(timeout=5.0, trust_env=False)
        try:
            response = await client.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
            self._url_keys = _key_set(response.content)
            logger.info("JWKS fetched from %s: %d keys", url, len(self._url_keys))
        except (httpx.HTTPError, jwt.PyJWTError, ValueError) as exc:
            # Keep the keys we had: an IdP blip must not log everybody out.
            logger.error(
                "JWKS fetch from %s failed, keeping %d cached keys: %s", url, len(self._url_keys), exc
            )
        finally:
            self._fetched_at = self._clock()
            if self._http is None:
                await client.aclose()

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed("MALFORMED_TOKEN", f"not a JWT ({exc})") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthenticationFailed("ALGORITHM_NOT_ALLOWED", f"alg {alg!r:.20} is not allowed")
        kid = header.get("kid") or ""
        if not isinstance(kid, str):
            raise AuthenticationFailed("UNKNOWN_KEY", "kid is not a string")
        keys = await self._keys(kid)
        key = keys.get(kid) or (next(iter(keys.values())) if not kid and len(keys) == 1 else None)
        if key is None:
            raise AuthenticationFailed("UNKNOWN_KEY", f"no key {kid!r:.40} in the JWKS")
        if key.key_type != _KEY_TYPE_OF_ALG.get(alg[:2]):
            raise AuthenticationFailed(
                "ALGORITHM_NOT_ALLOWED", f"alg {alg} does not fit key {kid!r:.40} ({key.key_type})"
            )
        s = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=list(s.audiences),
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("TOKEN_EXPIRED", "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationFailed(
                "TOKEN_NOT_YET_VALID", "the token is not valid yet (nbf/iat)"
            ) from None
        except jwt.InvalidAudienceError:
            raise AuthenticationFailed("WRONG_AUDIENCE", "the token is not for this audience") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationFailed("WRONG_ISSUER", "the token's issuer is not trusted") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed("INVALID_TOKEN", f"{exc}"[:200]) from None
        except Exception as exc:
            # The text may quote the token: only the type is logged and answered.
            _CRASH_LINES.log(
                logging.WARNING,
                type(exc).__name__,
                "a bearer token made PyJWT raise %s; refused",
                type(exc).__name__,
            )
            raise AuthenticationFailed("INVALID_TOKEN", "the token could not be verified") from None
        subject = claims.get(s.principal_claim)
        if not isinstance(subject, str) or not subject:
            raise AuthenticationFailed("INVALID_TOKEN", f"no {s.principal_claim!r} claim naming the caller")
        return Principal(name=f"jwt:{subject}", source="jwt", claims=claims)
