"""The one-time OAuth2 login of an authorization-code upstream (RFC 6749 4.1,
RFC 7636 PKCE, RFC 8252 loopback redirect).

``python -m adapter login openframe`` prints the authorization URL (and opens a
browser unless told not to), then gets the authorization code one of two ways:

- **loopback** (default): the browser is redirected to a callback the login serves
  on a loopback port, which checks ``state`` (callbacks with a wrong one are refused
  and the login keeps waiting for the genuine one);
- **pasted** (``redirect_uri`` set to the app's registered ``https://`` callback,
  e.g. ``https://your-app.com/callback``): the user pastes the address the browser
  landed on, or the code alone (:mod:`adapter.auth.pasted_redirect`).

Either way the code is exchanged with its PKCE verifier and the refresh token is
stored in the configured owner-only token file. A vendor that grants no refresh
token still gets a login: its access token is stored, used until it expires, and
the adapter then asks for the login to be run again (``LoginRequired``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
import webbrowser
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from adapter.auth.errors import CredentialError
from adapter.auth.pasted_redirect import PasteRefused, RedirectError, code_from_paste
from adapter.auth.token_endpoint import TokenEndpoint
from adapter.auth.token_file import StoredTokens, TokenFile

__all__ = ["LoginFailed", "LoginRequest", "LoginResult", "ReadPasted", "pkce_pair", "run_login"]

logger = logging.getLogger(__name__)

_PAGE = "<!doctype html><title>mesh-adapter login</title><p>{}</p>"


class LoginFailed(Exception):
    """The login did not produce a refresh token; the message says why."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    token_file: Path
    scope: str
    #: Whether the vendor granted a refresh token (if not, log in again at ``access_token_expires_at``).
    refresh_token: bool = True
    #: Wall-clock (Unix) expiry of the stored access token; 0 = not said.
    access_token_expires_at: float = 0.0


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """What the login needs, resolved from configuration."""

    upstream: str
    authorize_url: str
    endpoint: TokenEndpoint
    token_file: TokenFile
    scope: str = ""
    redirect_host: str = "127.0.0.1"
    redirect_port: int = 0
    redirect_path: str = "/callback"
    #: A registered non-loopback redirect URI: the code is pasted (out of band).
    redirect_uri: str = ""


#: Reads what the user pastes, showing the prompt; None when there is no more input.
ReadPasted = Callable[[str], Awaitable[str | None]]


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge): 86 URL-safe characters of entropy."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class _Callback:
    """The loopback endpoint the authorization server redirects the browser to."""

    def __init__(self, state: str) -> None:
        self._state = state
        self.code: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handle(self, request: web.Request) -> web.Response:
        query = request.query
        if not hmac.compare_digest(query.get("state", "").encode(), self._state.encode()):
            # Not our authorization request (CSRF, or a stale tab): refuse, keep waiting.
            logger.warning("login callback with a wrong or missing state refused")
            return web.Response(
                status=400, text=_PAGE.format("Unknown login attempt."), content_type="text/html"
            )
        if self.code.done():
            return web.Response(status=409, text=_PAGE.format("Already used."), content_type="text/html")
        if "error" in query:
            error = query["error"] + (
                f": {query['error_description']}" if "error_description" in query else ""
            )
            self.code.set_exception(LoginFailed(f"the authorization server refused: {error}"))
            return web.Response(status=400, text=_PAGE.format("Login refused."), content_type="text/html")
        code = query.get("code", "")
        if not code:
            self.code.set_exception(LoginFailed("the callback carried no code"))
            return web.Response(status=400, text=_PAGE.format("No code."), content_type="text/html")
        self.code.set_result(code)
        return web.Response(
            text=_PAGE.format("Logged in. You can close this window."), content_type="text/html"
        )


def _authorization_url(login: LoginRequest, redirect_uri: str, state: str, challenge: str) -> str:
    params = {
        "response_type": "code",
        "client_id": login.endpoint.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if login.scope:
        params["scope"] = login.scope
    parts = urlsplit(login.authorize_url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit(parts._replace(query=query))


async def _show(url: str, announce: Callable[[str], None], open_browser: bool) -> None:
    announce(url)
    if open_browser:
        await asyncio.to_thread(webbrowser.open, url)


async def _loopback_code(
    login: LoginRequest,
    state: str,
    challenge: str,
    *,
    announce: Callable[[str], None],
    open_browser: bool,
    wait_seconds: float,
) -> tuple[str, str]:
    """(code, redirect_uri) from the loopback callback."""
    callback = _Callback(state)
    app = web.Application()
    app.router.add_get(login.redirect_path, callback.handle)
    # No access log: the callback's query string carries the authorization code.
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)  # reads no body
    await runner.setup()
    try:
        site = web.TCPSite(runner, login.redirect_host, login.redirect_port)
        await site.start()
        port = runner.addresses[0][1]
        host = f"[{login.redirect_host}]" if ":" in login.redirect_host else login.redirect_host
        redirect_uri = f"http://{host}:{port}{login.redirect_path}"
        await _show(_authorization_url(login, redirect_uri, state, challenge), announce, open_browser)
        try:
            return await asyncio.wait_for(callback.code, wait_seconds), redirect_uri
        except TimeoutError:
            raise LoginFailed(f"no callback on {redirect_uri} within {wait_seconds:g}s") from None
    finally:
        await runner.cleanup()


async def _pasted_code(
    login: LoginRequest,
    state: str,
    challenge: str,
    *,
    announce: Callable[[str], None],
    open_browser: bool,
    wait_seconds: float,
    read_pasted: ReadPasted,
) -> str:
    """The code the user pastes (asks again after a paste that is not this login's)."""
    redirect_uri = login.redirect_uri
    await _show(_authorization_url(login, redirect_uri, state, challenge), announce, open_browser)
    prompt = f"Paste the address your browser lands on ({redirect_uri}?code=...), or just the code:"
    try:
        async with asyncio.timeout(wait_seconds):
            while True:
                pasted = await read_pasted(prompt)
                if pasted is None:
                    raise LoginFailed("no redirect address or code was pasted")
                try:
                    code, state_checked = code_from_paste(pasted, redirect_uri=redirect_uri, state=state)
                except PasteRefused as exc:
                    logger.warning("pasted login redirect refused: %s", exc)  # never the paste itself
                    prompt = f"Not accepted: {exc}. Paste it again:"
                    continue
                except RedirectError as exc:
                    raise LoginFailed(f"the authorization server refused: {exc}") from None
                if not state_checked:
                    logger.info("a bare code was pasted: no state to compare; PKCE binds it to this login")
                return code
    except TimeoutError:
        raise LoginFailed(f"nothing usable was pasted within {wait_seconds:g}s") from None


async def run_login(
    login: LoginRequest,
    *,
    announce: Callable[[str], None],
    open_browser: bool = False,
    wait_seconds: float = 300.0,
    read_pasted: ReadPasted | None = None,
) -> LoginResult:
    """Runs the whole login; ``announce`` receives the URL the user must open, and
    ``read_pasted`` reads the redirect address of a pasted login."""
    state = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    if login.redirect_uri:
        if read_pasted is None:
            raise LoginFailed(
                f"{login.redirect_uri} is not a loopback callback: the login needs a terminal to paste into"
            )
        code = await _pasted_code(
            login, state, challenge,
            announce=announce, open_browser=open_browser, wait_seconds=wait_seconds, read_pasted=read_pasted,
        )  # fmt: skip
        redirect_uri = login.redirect_uri
    else:
        code, redirect_uri = await _loopback_code(
            login, state, challenge, announce=announce, open_browser=open_browser, wait_seconds=wait_seconds
        )
    try:
        grant = await login.endpoint.request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
        )
    except CredentialError as exc:
        raise LoginFailed(f"code exchange failed: {exc}") from None
    expires_at = time.time() + grant.expires_in if grant.expires_in else 0.0
    login.token_file.write(
        StoredTokens(
            # Empty when the vendor grants none: the access token is used until it expires.
            refresh_token=grant.refresh_token or "",
            token_url=login.endpoint.url,
            client_id=login.endpoint.client_id,
            scope=grant.scope,
            access_token=grant.access_token,
            access_token_expires_at=expires_at,
        )
    )
    if grant.refresh_token:
        logger.info("login of %s stored its refresh token in %s", login.upstream, login.token_file.path)
    else:
        logger.warning(
            "%s granted no refresh token: its access token (stored in %s) works until it expires; "
            "then run `python -m adapter login %s` again",
            login.upstream, login.token_file.path, login.upstream,
        )  # fmt: skip
    return LoginResult(
        token_file=login.token_file.path,
        scope=grant.scope,
        refresh_token=bool(grant.refresh_token),
        access_token_expires_at=expires_at,
    )
