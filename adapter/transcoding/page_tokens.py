"""Signed page tokens: a caller can hold one, never forge or alter it.

A token is ``base64url(JSON payload) "." base64url(MAC)``, the MAC being the
first 16 bytes of HMAC-SHA256 over a domain tag and the payload. The payload
binds the method, the filters' fingerprint, the paging scheme, the position and
the page size (see :mod:`.pagination`), so a token replayed on another method or
with other filters is refused too. Only canonical base64 is accepted: any change
to a token's text is a different token.

Keys come from ``page_tokens.keys`` or ``page_tokens.keys_file`` (one key per
line, the first signs, every one verifies): all replicas that share the keys
accept each other's tokens, across restarts, and a rotation is "add the new key
first, drop the old one once its tokens have expired". Without keys, a random
key per process signs, and a warning says tokens will not survive a restart nor
work on another replica: good enough for one process, never for a fleet.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from adapter.config.settings import MIN_PAGE_TOKEN_KEY_CHARS, ConfigError, PageTokenSettings
from adapter.upstream.errors import CredentialError
from adapter.upstream.secret_source import SecretSource

from .errors import BindingError

__all__ = ["PageTokenSigner"]

logger = logging.getLogger(__name__)

_DOMAIN = b"mesh-adapter page token\x00"
_MAC_BYTES = 16
#: Longer page_token values are refused before any decoding work.
MAX_TOKEN_CHARS = 8192


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Canonical unpadded base64url only (padding bits must be zero)."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


class PageTokenSigner:
    """Signs and verifies page-token payloads with a ring of keys.

    Example::

        signer = PageTokenSigner.from_keys([b"...32 bytes or more..."])
        token = signer.sign({"p": 2})
        assert signer.verify(token) == {"p": 2}
    """

    def __init__(
        self, keys: Callable[[], Sequence[bytes]], *, recheck: Callable[[], Sequence[bytes]] | None = None
    ) -> None:
        """``keys`` returns the current keys, the signing one first (called per use);
        ``recheck`` re-reads them at once, tried when a token verifies with none
        (another replica may have picked up a rotated key file first)."""
        self._keys = keys
        self._recheck = recheck

    @classmethod
    def from_keys(cls, keys: Sequence[bytes]) -> PageTokenSigner:
        if not keys:
            raise ValueError("a PageTokenSigner needs at least one key")
        fixed = tuple(keys)
        return cls(lambda: fixed)

    @classmethod
    def ephemeral(cls) -> PageTokenSigner:
        """A random key, for tokens that never leave this process."""
        return cls.from_keys([secrets.token_bytes(32)])

    @classmethod
    def from_settings(cls, settings: PageTokenSettings) -> PageTokenSigner:
        """The signer ``page_tokens`` configures; reads a keys file now (raising
        ConfigError when it is unusable) and again whenever it changes."""
        if settings.keys_file is not None:
            try:
                return cls.from_key_file(
                    SecretSource.from_file(
                        settings.keys_file, reload_interval=settings.reload_interval_seconds
                    )
                )
            except (CredentialError, ValueError) as exc:
                raise ConfigError(f"page_tokens.keys_file: {exc}") from None
        if settings.keys:
            return cls.from_keys([k.get_secret_value().encode() for k in settings.keys])
        logger.warning(
            "page_tokens has no keys: page tokens are signed with a random key and will not survive a "
            "restart nor work on another replica; set page_tokens.keys_file (docs/configuration.md)"
        )
        return cls.ephemeral()

    @classmethod
    def from_key_file(cls, source: SecretSource) -> PageTokenSigner:
        """Keys from a file (one per line, newest first); reads it now."""
        ring = _KeyFile(source)
        ring.keys()  # fail at start-up, not on the first list call
        return cls(ring.keys, recheck=lambda: ring.keys(recheck=True))

    def sign(self, payload: dict[str, Any]) -> str:
        """A token for ``payload``; ValueError when it would be longer than
        :meth:`verify` reads (MAX_TOKEN_CHARS): a token that cannot be read back would
        break a listing one page later, silently."""
        body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        token = f"{_b64(body)}.{_b64(self._mac(self._keys()[0], body))}"
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError(f"{len(token)} characters as a page token; at most {MAX_TOKEN_CHARS} are read")
        return token

    def verify(self, token: str) -> dict[str, Any]:
        """The payload of a token this signer's keys made; BindingError otherwise."""
        try:
            if len(token) > MAX_TOKEN_CHARS:
                raise ValueError("too long")
            body_text, _, mac_text = token.partition(".")
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, binascii.Error, UnicodeEncodeError):
            raise BindingError("page_token", "is not a valid page token") from None
        if not self._known(body, mac, self._keys()) and (
            self._recheck is None or not self._known(body, mac, self._recheck())
        ):
            raise BindingError("page_token", "is not a page token this service issued (or it was altered)")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):  # signed by us, so only after a format change
            raise BindingError("page_token", "is not a valid page token")
        return payload

    def _known(self, body: bytes, mac: bytes, keys: Sequence[bytes]) -> bool:
        return any(hmac.compare_digest(self._mac(key, body), mac) for key in keys)

    @staticmethod
    def _mac(key: bytes, body: bytes) -> bytes:
        return hmac.new(key, _DOMAIN + body, hashlib.sha256).digest()[:_MAC_BYTES]


class _KeyFile:
    """Keys from a file: one per line, blank lines and ``#`` comments ignored."""

    def __init__(self, source: SecretSource) -> None:
        self._source = source
        self._text: str | None = None
        self._keys: tuple[bytes, ...] = ()

    def keys(self, *, recheck: bool = False) -> tuple[bytes, ...]:
        text = self._source.get(recheck=recheck)
        if text != self._text:
            keys = tuple(
                line.strip().encode()
                for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            )
            problem = (
                "has no key"
                if not keys
                else f"has a key shorter than {MIN_PAGE_TOKEN_KEY_CHARS} characters"
                if any(len(k) < MIN_PAGE_TOKEN_KEY_CHARS for k in keys)
                else ""
            )
            if problem and not self._keys:
                raise ValueError(f"page_tokens.keys_file {self._source.path} {problem}")
            if problem:
                logger.warning(
                    "page_tokens.keys_file %s %s; keeping the previous keys", self._source.path, problem
                )
            else:
                self._keys = keys
            self._text = text
        return self._keys
