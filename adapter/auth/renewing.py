"""The shared mechanics of credentials that expire: a cached bearer token,
renewed by one caller while the others wait, and renewed once more when the
upstream rejects it.

A renewal that fails is held: for a while, callers get its error again without a
new token request (the ``Retry-After`` the endpoint asked for, else
:data:`HOLD_UNAVAILABLE` or :data:`HOLD_REFUSED`), unless what the renewal is made
of changed (a rotated client secret, a new login). Without the hold every call
sent its own token request while the secret was wrong or the endpoint down: at a
thousand calls a second, a vendor's OAuth endpoint (and its lockout rules) would
see as many.

Subclasses say how to obtain a token (:meth:`RenewingCredentials._obtain`);
this class decides when. A renewal runs as one shielded task: callers whose
deadline passes stop waiting for it, but the renewal finishes and is kept, so
the next caller does not start another (no stampede on the token endpoint).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from .errors import CredentialError, TokenEndpointUnavailable

__all__ = ["HOLD_REFUSED", "HOLD_UNAVAILABLE", "BearerToken", "RenewingCredentials", "expiry", "renew_time"]

#: Seconds a failed renewal is answered from memory when the endpoint could not be
#: reached (or answered 5xx/429 without ``Retry-After``): a blip costs calls a second.
HOLD_UNAVAILABLE = 1.0
#: ... and when the grant was refused or a login is needed: nothing changes until the
#: operator does, and that change (a rotated secret, a login) ends the hold at once.
HOLD_REFUSED = 5.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, repr=False)
class BearerToken:
    """An access token and when to stop using it (monotonic clock)."""

    value: str
    #: Renew at or after this time (None: until the upstream rejects it).
    renew_at: float | None = None
    #: When the vendor stops taking it (None: unknown). Between ``renew_at`` and this, a
    #: renewal that fails leaves the token in use.
    expires_at: float | None = None

    def __repr__(self) -> str:
        return f"BearerToken(***, renew_at={self.renew_at}, expires_at={self.expires_at})"


def renew_time(now: float, lifetime: float | None, margin: float) -> float | None:
    """When a token obtained ``now`` with ``lifetime`` should be renewed: ``margin``
    early, but never earlier than half-way (short-lived tokens would otherwise be
    renewed on every call)."""
    if lifetime is None:
        return None
    return now + lifetime - min(margin, lifetime / 2)


def expiry(now: float, lifetime: float | None) -> float | None:
    """When a token obtained ``now`` with ``lifetime`` stops working (None: unknown),
    a little early: the vendor counted from before the answer reached us."""
    return None if lifetime is None else now + lifetime - min(1.0, lifetime / 10)


class RenewingCredentials(ABC):
    """A :class:`~adapter.upstream.credentials.CredentialProvider` around a renewable token."""

    def __init__(
        self,
        *,
        header: str = "Authorization",
        scheme: str = "Bearer",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._header = header
        self._scheme = scheme
        self._clock = clock
        self._token: BearerToken | None = None
        self._renewal: asyncio.Task[BearerToken] | None = None
        #: The last failed renewal: until when it holds, its error, what it was made of.
        self._failed: tuple[float, CredentialError, object] | None = None
        #: Tokens obtained so far (for tests and logs).
        self.renewals = 0

    @abstractmethod
    async def _obtain(self, rejected: BearerToken | None) -> BearerToken:
        """A fresh token. ``rejected`` is the token the upstream just refused, if
        that is why (a source shared with other processes may already hold a newer one)."""

    def _inputs(self) -> object:
        """What a renewal is made of, looked at now (files re-read when they changed);
        a failed renewal's hold ends when this differs from what it was."""
        return None

    def _stale(self, token: BearerToken) -> bool:
        """Whether ``token`` must be renewed before use (subclasses add reasons,
        e.g. a rotated signing key)."""
        return token.renew_at is not None and self._clock() >= token.renew_at

    def ready_headers(self) -> list[tuple[str, str]] | None:
        token = self._token
        if token is None or self._stale(token):
            return None
        return [(self._header, self._render(token))]

    async def auth_headers(self) -> list[tuple[str, str]]:
        token = self._token
        if token is None or self._stale(token):  # else, as on most calls, no await at all
            token = await self.current()
        return [(self._header, self._render(token))]

    async def current(self) -> BearerToken:
        """The token to send now, renewed first when it is due (raises CredentialError
        when it cannot be had)."""
        token = self._token
        if token is None or self._stale(token):
            try:
                token = await self._renew(None)
            except CredentialError:
                if not self._serves(token):
                    raise
                assert token is not None  # renewed early (the refresh margin) and failed
        return token

    def _serves(self, token: BearerToken | None) -> bool:
        """Whether ``token`` still works (renewed early, not expired yet)."""
        return token is not None and token.expires_at is not None and self._clock() < token.expires_at

    async def rejected(self, sent: list[tuple[str, str]]) -> bool:
        sent_value = next((v for k, v in sent if k.lower() == self._header.lower()), None)
        current = self._token
        if current is not None and self._render(current) != sent_value:
            return True  # renewed since that attempt: the new token is worth a try
        logger.info("%s: the upstream rejected the token; renewing it once", self.describe())
        self._token = None
        await self._renew(current)
        return True

    async def _renew(self, rejected: BearerToken | None) -> BearerToken:
        task = self._renewal
        if task is None and self._failed is not None:
            until, error, inputs = self._failed
            now = self._clock()
            if now < until and self._inputs() == inputs:
                held = copy.copy(error)  # a fresh traceback each time, not one growing
                if isinstance(held, TokenEndpointUnavailable) and held.retry_after is not None:
                    held.retry_after = until - now
                raise held
            self._failed = None
        if task is None:
            task = asyncio.get_running_loop().create_task(self._run_renewal(rejected))
            self._renewal = task
            task.add_done_callback(self._renewal_done)
        # Shielded: a waiter's deadline cancels its wait, not the shared renewal.
        return await asyncio.shield(task)

    async def _run_renewal(self, rejected: BearerToken | None) -> BearerToken:
        try:
            token = await self._obtain(rejected)
        except CredentialError as exc:
            asked = exc.retry_after if isinstance(exc, TokenEndpointUnavailable) else None
            hold = asked or (HOLD_UNAVAILABLE if exc.retriable else HOLD_REFUSED)
            self._failed = (self._clock() + hold, exc, self._inputs())
            current = self._token
            if current is not None and current.expires_at is not None and self._serves(current):
                logger.warning(
                    "%s: renewing the token failed (%s); the current one serves until it expires in %.0fs",
                    self.describe(),
                    exc,
                    current.expires_at - self._clock(),
                )
            raise
        self.renewals += 1
        self._token = token
        return token

    def _renewal_done(self, task: asyncio.Task[BearerToken]) -> None:
        if self._renewal is task:
            self._renewal = None
        if not task.cancelled():
            task.exception()  # retrieved here; every waiter also sees it

    def _render(self, token: BearerToken) -> str:
        return f"{self._scheme} {token.value}" if self._scheme else token.value

    @abstractmethod
    def describe(self) -> str: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"
