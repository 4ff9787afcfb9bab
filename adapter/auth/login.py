"""The one-time OAuth2 login of an authorization-code upstream (RFC 6749 4.1,
RFC 7636 PKCE, RFC 8252 loopback redirect).

``python -m adapter login openframe`` prints the authorization URL (and opens a
browser unless told not to), receives the redirect on a loopback port, checks
``state``, exchanges the code with its PKCE verifier and stores the refresh token
in the configured owner-only token file. Callbacks with a wrong ``state`` are
refused and the login keeps waiting for the genuine one.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from adapter.auth.errors import CredentialError
from adapter.auth.token_endpoint import TokenEndpoint
from adapter.auth.token_file import StoredTokens, TokenFile

__all__ = ["LoginFailed", "LoginResult", "pkce_pair", "run_login"]

logger = logging.getLogger(__name__)

_PAGE = "<!doctype html><title>mesh-adapter login</title><p>{}</p>"


class LoginFailed(Exception):
    """The login did not produce a refresh token; the message says why."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    token_file: Path
    scope: str


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


async def run_login(
    login: LoginRequest,
    *,
    announce: Callable[[str], None],
    open_browser: bool = False,
    wait_seconds: float = 300.0,
) -> LoginResult:
    """Runs the whole login; ``announce`` receives the URL the user must open."""
    state = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    callback = _Callback(state)
    app = web.Application()
    app.router.add_get(login.redirect_path, callback.handle)
    # No access log: the callback's query string carries the authorization code.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, login.redirect_host, login.redirect_port)
        await site.start()
        port = runner.addresses[0][1]
        host = f"[{login.redirect_host}]" if ":" in login.redirect_host else login.redirect_host
        redirect_uri = f"http://{host}:{port}{login.redirect_path}"
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
        url = urlunsplit(parts._replace(query=query))
        announce(url)
        if open_browser:
            await asyncio.to_thread(webbrowser.open, url)
        try:
            code = await asyncio.wait_for(callback.code, wait_seconds)
        except TimeoutError:
            raise LoginFailed(f"no callback on {redirect_uri} within {wait_seconds:g}s") from None
    finally:
        await runner.cleanup()
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
    if not grant.refresh_token:
        raise LoginFailed("the token endpoint issued no refresh token (is offline access allowed?)")
    login.token_file.write(
        StoredTokens(
            refresh_token=grant.refresh_token,
            token_url=login.endpoint.url,
            client_id=login.endpoint.client_id,
            scope=grant.scope,
            access_token=grant.access_token,
            access_token_expires_at=time.time() + grant.expires_in if grant.expires_in else 0.0,
        )
    )
    logger.info("login of %s stored its refresh token in %s", login.upstream, login.token_file.path)
    return LoginResult(token_file=login.token_file.path, scope=grant.scope)
