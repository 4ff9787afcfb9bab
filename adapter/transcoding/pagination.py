"""AIP-158 paging for callers, whatever the upstream does.

Callers send ``page_size`` / ``page_token`` and read ``next_page_token``. The
token is opaque to them and signed (:mod:`.page_tokens`): it holds the method,
the upstream position (page number, offset or the upstream's cursor), the page
size in use, and a fingerprint of the request's filters, so a token cannot be
forged, altered, or replayed against another method or query (AIP-158: that is
INVALID_ARGUMENT). A page size read from a token is still clamped to
``max_page_size``: the configuration may have changed since it was issued.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from adapter.config.settings import PaginationSettings
from adapter.descriptors.method_spec import PageStyle

from .errors import BindingError
from .json_values import MalformedPayloadError
from .page_tokens import PageTokenSigner

__all__ = ["PagePosition", "Paginator", "filters_fingerprint"]

#: 1 was unsigned base64url JSON; such tokens are refused.
_TOKEN_VERSION = 2
_INVALID = "is not a valid page token"


@dataclass(frozen=True, slots=True)
class PagePosition:
    """Where the current upstream call reads from."""

    size: int
    #: 1-based page (PAGE), item offset (OFFSET) or upstream cursor (CURSOR, "" = start).
    at: int | str


def filters_fingerprint(query: list[tuple[str, str]]) -> str:
    """Short hash of the non-paging query parameters."""
    digest = hashlib.blake2s(repr(sorted(query)).encode(), digest_size=16)
    return digest.hexdigest()


def _dig(document: Any, dotted: str) -> Any:
    for key in dotted.split(".") if dotted else ():
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


class Paginator:
    """Translates between AIP-158 fields and one upstream paging style."""

    def __init__(
        self,
        style: PageStyle,
        settings: PaginationSettings,
        *,
        tokens: PageTokenSigner | None = None,
        method: str = "",
    ) -> None:
        """``tokens`` signs the page tokens (default: a random per-process key,
        fine for tokens that never leave the process); ``method`` is bound into them."""
        if style is PageStyle.NONE:
            raise ValueError("a Paginator needs a paging style")
        self.style = style
        self.settings = settings
        self._tokens = tokens or _process_signer()
        self._method = method

    def position(self, page_size: int, page_token: str, fingerprint: str) -> PagePosition:
        """Validates the caller's fields; raises BindingError (INVALID_ARGUMENT)."""
        s = self.settings
        if page_size < 0:
            raise BindingError("page_size", "must not be negative")
        size = min(page_size or s.default_page_size, s.max_page_size)
        if not page_token:
            return PagePosition(
                size=size,
                at=1 if self.style is PageStyle.PAGE else (0 if self.style is PageStyle.OFFSET else ""),
            )
        token = self._tokens.verify(page_token)
        if token.get("v") != _TOKEN_VERSION:
            raise BindingError("page_token", _INVALID)
        if token.get("m") != self._method:
            raise BindingError("page_token", "was issued for another method")
        if token.get("f") != fingerprint:
            raise BindingError("page_token", "was issued for a request with other filters")
        if token.get("s") != self.style.value:
            raise BindingError("page_token", "was issued for another paging scheme")
        at = token.get("p")
        kept_size = token.get("n")
        if type(kept_size) is not int or kept_size < 1:
            raise BindingError("page_token", _INVALID)
        if self.style is PageStyle.CURSOR:
            if not isinstance(at, str) or not at:
                raise BindingError("page_token", _INVALID)
            return PagePosition(size=size, at=at)
        if type(at) is not int or at < (1 if self.style is PageStyle.PAGE else 0):
            raise BindingError("page_token", _INVALID)
        # Page numbers only line up with the size the token was issued for.
        kept = min(kept_size, s.max_page_size)
        return PagePosition(size=kept if self.style is PageStyle.PAGE else size, at=at)

    def query(self, pos: PagePosition) -> list[tuple[str, str]]:
        """Upstream query parameters selecting ``pos``."""
        s = self.settings
        if self.style is PageStyle.PAGE:
            return [(s.page_param, str(pos.at)), (s.per_page_param, str(pos.size))]
        if self.style is PageStyle.OFFSET:
            return [(s.skip_param, str(pos.at)), (s.limit_param, str(pos.size))]
        params = [(s.limit_param, str(pos.size))]
        if pos.at:
            params.append((s.cursor_param, str(pos.at)))
        return params

    def next_page(
        self, document: Any, item_count: int, pos: PagePosition, fingerprint: str
    ) -> tuple[str, int]:
        """``(next_page_token, total_size)`` from the upstream's list answer."""
        raw_total = _dig(document, self.settings.total_field)
        total = raw_total if type(raw_total) is int and raw_total >= 0 else 0  # not a bool
        next_at: int | str | None
        if self.style is PageStyle.CURSOR:
            cursor = _dig(document, self.settings.next_cursor_field)
            next_at = cursor if isinstance(cursor, str) and cursor and item_count else None
        elif self.style is PageStyle.PAGE:
            assert isinstance(pos.at, int)
            more = pos.at * pos.size < total if total else item_count >= pos.size
            next_at = pos.at + 1 if more and item_count else None
        else:
            assert isinstance(pos.at, int)
            seen = pos.at + item_count
            more = seen < total if total else item_count >= pos.size
            next_at = seen if more and item_count else None
        if next_at is None:
            return "", total
        payload = {"v": _TOKEN_VERSION, "m": self._method, "s": self.style.value, "p": next_at, "n": pos.size}
        try:
            return self._tokens.sign({**payload, "f": fingerprint}), total
        except ValueError as exc:  # a cursor too long to carry: say so now, not one page later
            why = f"the next cursor ({len(str(next_at))} characters) does not fit: {exc}"
            raise MalformedPayloadError(self.settings.next_cursor_field, why) from None


@functools.cache
def _process_signer() -> PageTokenSigner:
    return PageTokenSigner.ephemeral()
