"""One OAuth2 token endpoint (RFC 6749 section 3.2): posts a grant, reads the answer.

Errors are classified for the callers above: an unreachable endpoint or a
5xx/429 answer is :class:`TokenEndpointUnavailable` (retriable), a refused
client or grant is :class:`TokenRejected`. Messages carry the RFC 6749 ``error``
code and description, never the form that was sent.
"""

from __future__ import annotations

import logging
import math
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

from adapter.upstream.secret_source import SecretSource
from adapter.upstream.server_delay import DEFAULT_MAX_SERVER_DELAY, parse_retry_after

from .errors import TokenEndpointUnavailable, TokenRejected

__all__ = ["MAX_MESSAGE_CHARS", "TokenEndpoint", "TokenGrant"]

logger = logging.getLogger(__name__)

#: The most of an endpoint's own words (``error_description``) kept in a message or a log line.
MAX_MESSAGE_CHARS = 300
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")


@dataclass(frozen=True, slots=True, repr=False)
class TokenGrant:
    """A token answer. ``repr`` masks the tokens."""

    access_token: str
    token_type: str = "Bearer"
    #: Seconds the access token lives (None: the endpoint did not say).
    expires_in: float | None = None
    refresh_token: str | None = None
    scope: str = ""

    def __repr__(self) -> str:
        refresh = ", refresh_token=***" if self.refresh_token else ""
        return f"TokenGrant(access_token=***{refresh}, expires_in={self.expires_in}, scope={self.scope!r})"


class TokenEndpoint:
    """Posts grants to ``url`` as client ``client_id``.

    ``client_auth="basic"`` sends the secret as HTTP Basic (RFC 6749 2.3.1's
    preferred form); ``"body"`` as ``client_secret`` form field. A public client
    (no secret) always names itself with ``client_id`` in the form.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        client_secret: SecretSource | None = None,
        client_auth: Literal["basic", "body"] = "basic",
        upstream: str = "",
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
        transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
        max_server_delay: float = DEFAULT_MAX_SERVER_DELAY,
    ) -> None:
        self.url = url
        self._max_server_delay = max_server_delay
        self.client_id = client_id
        self._secret = client_secret
        self._client_auth = client_auth
        self._upstream = upstream
        self._timeout = timeout
        self._verify = verify
        self._transport_factory = transport_factory
        #: Token requests sent (for metrics and tests).
        self.requests = 0
        self._refused = False

    def secret_version(self) -> int:
        """The client secret's version, its file looked at now (0 without a secret)."""
        if self._secret is None:
            return 0
        self._secret.get(recheck=True)
        return self._secret.version

    async def request(self, form: dict[str, str], *, recheck_secret: bool = False) -> TokenGrant:
        """Posts ``form`` (``grant_type`` and its parameters) and returns the grant."""
        data = dict(form)
        # After a refusal the secret file may since have been rotated: look at once.
        recheck = recheck_secret or self._refused
        secret = self._secret.get(recheck=recheck) if self._secret is not None else None
        basic = secret is not None and self._client_auth == "basic"
        if not basic:
            data["client_id"] = self.client_id
            if secret is not None:
                data["client_secret"] = secret
        self.requests += 1
        # A client per token request: they are rare (once per token lifetime), and
        # nothing is left open between them.
        async with httpx.AsyncClient(
            timeout=self._timeout,
            verify=self._verify,
            trust_env=False,
            follow_redirects=False,
            transport=self._transport_factory() if self._transport_factory else None,
        ) as client:
            try:
                headers = {"Accept": "application/json"}
                if basic:
                    assert secret is not None
                    auth = httpx.BasicAuth(self.client_id, secret)
                    response = await client.post(self.url, data=data, auth=auth, headers=headers)
                else:
                    response = await client.post(self.url, data=data, headers=headers)
            except httpx.HTTPError as exc:
                raise TokenEndpointUnavailable(
                    f"token endpoint {self.url} unreachable: {type(exc).__name__}", upstream=self._upstream
                ) from None  # the request (with the secret) stays out of the chain
        try:
            grant = self._grant(response)
        except TokenRejected:
            self._refused = True
            raise
        self._refused = False
        return grant

    def _grant(self, response: httpx.Response) -> TokenGrant:
        body = _json(response.content)
        status = response.status_code
        token = body.get("access_token")
        if status == 200 and isinstance(token, str) and token:
            refresh, scope = body.get("refresh_token"), body.get("scope")
            return TokenGrant(
                access_token=token,
                token_type=_text(body.get("token_type")) or "Bearer",
                expires_in=_seconds(body.get("expires_in")),
                refresh_token=refresh if isinstance(refresh, str) else None,
                scope=scope if isinstance(scope, str) else "",  # kept whole: the login stores it
            )
        error = _error_code(body.get("error"))
        description = _text(body.get("error_description"))
        described = f"{error}: {description}" if error and description else error or description
        where = f"token endpoint {self.url} answered HTTP {status}"
        if status == 200:
            raise TokenEndpointUnavailable(f"{where} without an access_token", upstream=self._upstream)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"), cap=self._max_server_delay)
            raise TokenEndpointUnavailable(
                f"{where}{f' ({described})' if described else ''}",
                upstream=self._upstream,
                retry_after=retry_after,
            )
        logger.warning("%s: %s", where, described or "no error code")
        raise TokenRejected(
            f"{where}: {described or 'no error code'}",
            upstream=self._upstream,
            error=error or f"http_{status}",
        )

    def __repr__(self) -> str:
        return f"TokenEndpoint({self.url!r}, client_id={self.client_id!r})"


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _seconds(value: Any) -> float | None:
    if isinstance(value, str) and value.isascii() and value.isdigit():  # "²".isdigit() too
        value = float(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def _text(value: Any) -> str:
    """An answer's text field as it may go into a log line or an error: a string only,
    control characters replaced, at most MAX_MESSAGE_CHARS."""
    if not isinstance(value, str):
        return ""
    cut = value[:MAX_MESSAGE_CHARS]
    text = cut if cut.isprintable() else "".join(c if c.isprintable() else "?" for c in cut)
    return text + "..." if len(value) > MAX_MESSAGE_CHARS else text


def _error_code(value: Any) -> str:
    """The RFC 6749 ``error`` code (section 5.2: printable ASCII, no quote or backslash), or ""."""
    return value if isinstance(value, str) and _ERROR_CODE.fullmatch(value) else ""
