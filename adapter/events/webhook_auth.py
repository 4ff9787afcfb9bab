"""Who sent a webhook delivery, in one of two ways a source is configured for:

- :class:`SignatureCheck`: the vendor's keyed hash (HMAC) of the raw body in a
  header, as its ``(webhook)`` option declares (header, algorithm, encoding,
  prefix); several secrets during a rotation, several comma-separated values in
  the header. No library implements these vendor schemes; ``hmac.compare_digest``
  gives the constant-time comparison.
- :class:`TokenCheck`: a static header the vendor was configured to send (the
  OCTOSPINE guide's outgoing webhook has ``headers: {Authorization: "Bearer ..."}``
  and no secret), compared in constant time against every configured token.

Both raise :class:`WebhookRejectedError` (401 unauthentic, 503 nothing configured)
and never anything else, whatever bytes the header holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from pydantic import SecretStr

from .declarations import SignatureScheme

__all__ = ["DeliveryCheck", "SignatureCheck", "TokenCheck", "WebhookRejectedError", "token_digest"]

#: The current values a check compares, newest first (a file's, re-read when it changes).
Values = Callable[[], Sequence[bytes]]

#: Several signatures during a rotation, each a prefix and a digest.
_MAX_HEADER = 2048


class WebhookRejectedError(Exception):
    """A delivery the receiver refuses; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


class DeliveryCheck(Protocol):
    """Authenticates one delivery; returns the index of the secret or token that matched."""

    def check(self, body: bytes, headers: Mapping[str, str]) -> int: ...


class SignatureCheck:
    """The vendor's signature of the raw body.

    Example::

        check = SignatureCheck(SignatureScheme("x-octospine-signature", prefix="sha256="), [secret])
        check.check(raw_body, request.headers)
    """

    def __init__(self, scheme: SignatureScheme, secrets: Sequence[SecretStr] | Values) -> None:
        """``secrets``: the configured list, or a function giving the current keys
        (``str.encode``-d secrets, from a :class:`~adapter.events.webhook_secret_files.ValuesFile`)."""
        self.scheme = scheme
        if callable(secrets):
            self._current = secrets
        else:
            keys = [s.get_secret_value().encode() for s in secrets]
            self._current = lambda: keys
        hashlib.new(scheme.algorithm)  # an unknown algorithm fails at start-up, not per delivery

    def check(self, body: bytes, headers: Mapping[str, str]) -> int:
        name = self.scheme.header
        keys = self._current()
        if not keys:
            raise WebhookRejectedError(503, "NO_SECRET_CONFIGURED", "no webhook secret is configured")
        header = headers.get(name)
        if not header:
            raise WebhookRejectedError(401, "MISSING_SIGNATURE", f"no {name} header")
        if not header.isascii() or len(header) > _MAX_HEADER:
            raise WebhookRejectedError(401, "BAD_SIGNATURE", "signature header is not ASCII")
        offered = [self._digest_of(part) for part in header.split(",") if part.strip()]
        matched: int | None = None
        for index, key in enumerate(keys):
            expected = self._encode(hmac.new(key, body, self.scheme.algorithm).digest())
            for candidate in offered:
                # Compare against every secret and candidate: timing reveals nothing.
                if hmac.compare_digest(expected, candidate) and matched is None:
                    matched = index
        if matched is None:
            raise WebhookRejectedError(401, "BAD_SIGNATURE", "signature does not match any active secret")
        return matched

    def _encode(self, digest: bytes) -> bytes:
        if self.scheme.encoding == "base64":
            return base64.b64encode(digest)
        return digest.hex().encode()

    def _digest_of(self, part: str) -> bytes:
        part = part.strip()
        prefix = self.scheme.prefix
        if prefix and part[: len(prefix)].lower() == prefix.lower():
            part = part[len(prefix) :]
        # Hex is case-insensitive; base64 is not.
        return (part.lower() if self.scheme.encoding == "hex" else part).encode()


class TokenCheck:
    """A static header such as ``Authorization: Bearer <token>``.

    Tokens are compared as SHA-256 digests, so the comparison takes the same time
    whatever their lengths.
    """

    def __init__(self, header: str, scheme: str, tokens: Sequence[SecretStr] | Values) -> None:
        """``tokens``: the configured list, or a function giving the current tokens'
        :func:`token_digest` (from a :class:`~adapter.events.webhook_secret_files.ValuesFile`)."""
        self.header = header.lower()
        self.scheme = scheme
        if callable(tokens):
            self._current = tokens
        else:
            digests = [token_digest(t.get_secret_value()) for t in tokens]
            self._current = lambda: digests

    def check(self, body: bytes, headers: Mapping[str, str]) -> int:
        digests = self._current()
        if not digests:
            raise WebhookRejectedError(503, "NO_TOKEN_CONFIGURED", "no webhook token is configured")
        value = headers.get(self.header)
        if not value:
            raise WebhookRejectedError(401, "MISSING_TOKEN", f"no {self.header} header")
        token = value.strip()
        if self.scheme:
            word, _, token = token.partition(" ")
            if word.lower() != self.scheme.lower():  # auth schemes are case-insensitive (RFC 9110)
                raise WebhookRejectedError(401, "BAD_TOKEN", f"{self.header} is not a {self.scheme} token")
        offered = token_digest(token.strip())
        matched: int | None = None
        for index, digest in enumerate(digests):
            if hmac.compare_digest(digest, offered) and matched is None:
                matched = index
        if matched is None:
            raise WebhookRejectedError(401, "BAD_TOKEN", "token does not match any configured token")
        return matched


def token_digest(text: str) -> bytes:
    # surrogateescape: header bytes that are not UTF-8 still hash (and never match).
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()
