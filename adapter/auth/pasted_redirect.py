"""The authorization code from what a user pastes after an out-of-band login.

With a registered redirect URI that is not loopback (``https://your-app.com/callback``),
the browser lands on the app's page and the login cannot see it: the user copies the
address bar (``https://your-app.com/callback?code=...&state=...``), or only the code,
into the login. A pasted address must be the registered redirect URI and carry this
login's ``state``; a bare code carries no state to compare, and is bound to this login
by PKCE instead (the token endpoint refuses a code issued for another challenge, the
CSRF defence RFC 9700 4.7.1 accepts).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, urlsplit

__all__ = ["PasteRefused", "RedirectError", "code_from_paste"]


class PasteRefused(ValueError):
    """The paste is not this login's redirect; the message says why (ask again)."""


class RedirectError(Exception):
    """The authorization server redirected with ``error=...`` (the login failed)."""


def _same_endpoint(pasted: str, registered: str) -> bool:
    a, b = urlsplit(pasted), urlsplit(registered)
    return (a.scheme.lower(), a.netloc.lower(), a.path or "/") == (
        b.scheme.lower(),
        b.netloc.lower(),
        b.path or "/",
    )


def code_from_paste(text: str, *, redirect_uri: str, state: str) -> tuple[str, bool]:
    """(code, whether ``state`` was checked). Raises PasteRefused or RedirectError."""
    text = text.strip()
    if not text:
        raise PasteRefused("nothing was pasted")
    if "://" in text:
        if not _same_endpoint(text, redirect_uri):
            raise PasteRefused(f"that address is not the redirect URI {redirect_uri}")
        query = urlsplit(text).query
    elif text.lstrip("?").startswith(("code=", "state=", "error=")) or "&code=" in text:
        query = text.lstrip("?")
    elif any(c.isspace() or c in "?&#" for c in text):
        raise PasteRefused("that is neither the redirect address nor a code")
    else:
        return text, False
    params = dict(parse_qsl(query, keep_blank_values=True))
    if not hmac.compare_digest(params.get("state", "").encode(), state.encode()):
        # Not our authorization request (a stale tab, or a link someone else made).
        raise PasteRefused("its state is not this login's (an older attempt, or not yours)")
    if "error" in params:
        described = params["error"] + (
            f": {params['error_description']}" if params.get("error_description") else ""
        )
        raise RedirectError(described)
    code = params.get("code", "")
    if not code:
        raise PasteRefused("it carries no code")
    return code, True
