"""OAuth2 as OpenFrame documents it: a registered ``https://your-app.com/callback``
redirect (the user pastes where the browser landed, or just the code), the default
``read write`` scopes, and a vendor that grants no refresh token."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import grpc
import pytest
from openframe.v1 import alerts_pb2, alerts_pb2_grpc
from pydantic import ValidationError

from adapter.auth.from_settings import login_request_from_settings
from adapter.auth.login import LoginFailed, LoginResult, pkce_pair, run_login
from adapter.auth.pasted_redirect import PasteRefused, code_from_paste
from adapter.config.auth import OAuth2AuthorizationCodeAuth
from adapter.config.settings import UpstreamSettings
from simulator import Simulator
from tests.conftest import adapter_settings

from ..resilience.harness import StartSim, error_details, running_adapter
from .login_helpers import openframe_oauth

pytestmark = pytest.mark.usefixtures("profile")

ROOT = Path(__file__).resolve().parents[2]
APP_CALLBACK = "https://your-app.com/callback"


async def approve(url: str) -> str:
    """What the browser's address bar shows after approving: the authorization server's
    redirect, not followed (your-app.com is not ours to call)."""
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        return response.headers["Location"]


def _code_of(address: str) -> str:
    return parse_qs(urlsplit(address).query)["code"][0]


def _with_state(address: str, state: str) -> str:
    parts = urlsplit(address)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, "state": state})))


def _request(sim: Simulator, token_file: Path, **auth: Any) -> Any:
    base = adapter_settings(sim).upstreams["openframe"].model_dump()
    base["auth"] = openframe_oauth(token_file, **auth)["openframe"]
    return login_request_from_settings("openframe", UpstreamSettings.model_validate(base))


class Browser:
    """Approves the announced URL and hands out pastes, in order, as a user would."""

    def __init__(self, *pastes: Any) -> None:
        self.pastes = list(pastes)
        self.url = ""
        self.landed = ""
        self.prompts: list[str] = []
        self._approved: asyncio.Future[str] | None = None

    def announce(self, url: str) -> None:
        self.url = url
        self._approved = asyncio.ensure_future(approve(url))

    async def read(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        assert self._approved is not None
        self.landed = await self._approved
        if not self.pastes:
            return None
        paste = self.pastes.pop(0)
        return paste(self.landed) if callable(paste) else paste


async def _login(sim: Simulator, token_file: Path, browser: Browser, **auth: Any) -> LoginResult:
    request = _request(sim, token_file, redirect_uri=APP_CALLBACK, **auth)
    return await run_login(request, announce=browser.announce, read_pasted=browser.read, wait_seconds=10)


async def _get_alert(h: Any) -> alerts_pb2.Alert:
    return await alerts_pb2_grpc.AlertServiceStub(h.channel).GetAlert(
        alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5
    )


def test_the_documented_scopes_and_redirect_uri_settings() -> None:
    base = {"type": "oauth2_authorization_code", "authorize_url": "/a", "token_url": "/t", "client_id": "c",
            "token_file": "/tmp/t.json"}  # fmt: skip
    assert OAuth2AuthorizationCodeAuth.model_validate(base).scope == "read write"
    assert OAuth2AuthorizationCodeAuth.model_validate({**base, "scope": ""}).scope == ""
    ok = OAuth2AuthorizationCodeAuth.model_validate({**base, "redirect_uri": APP_CALLBACK})
    assert ok.redirect_uri == APP_CALLBACK
    for bad, why in [
        ({"redirect_uri": "http://your-app.com/callback"}, "absolute https:// URL"),
        ({"redirect_uri": "https://127.0.0.1/callback"}, "set redirect_host/redirect_port"),
        ({"redirect_uri": "https://localhost:8443/cb"}, "set redirect_host/redirect_port"),
        ({"redirect_uri": APP_CALLBACK + "#x"}, "fragment"),
        ({"redirect_uri": APP_CALLBACK, "redirect_port": 8080}, "not both"),
    ]:
        with pytest.raises(ValidationError, match=why):
            OAuth2AuthorizationCodeAuth.model_validate({**base, **bad})


@pytest.mark.parametrize(
    ("paste", "accepted"),
    [
        (f"{APP_CALLBACK}?code=abc&state=S", ("abc", True)),
        (f"  {APP_CALLBACK}?state=S&code=abc \n", ("abc", True)),
        ("?code=abc&state=S", ("abc", True)),
        ("code=abc&state=S", ("abc", True)),
        ("abc-123_XYZ", ("abc-123_XYZ", False)),
        (f"{APP_CALLBACK}?code=abc&state=T", "state is not this login's"),
        (f"{APP_CALLBACK}?code=abc", "state is not this login's"),
        ("code=abc", "state is not this login's"),
        ("https://evil.example/callback?code=abc&state=S", "not the redirect URI"),
        (f"{APP_CALLBACK}/other?code=abc&state=S", "not the redirect URI"),
        (f"{APP_CALLBACK}?state=S", "carries no code"),
        ("", "nothing was pasted"),
        ("two words", "neither the redirect address nor a code"),
    ],
)
def test_what_a_paste_may_be(paste: str, accepted: tuple[str, bool] | str) -> None:
    if isinstance(accepted, tuple):
        assert code_from_paste(paste, redirect_uri=APP_CALLBACK, state="S") == accepted
    else:
        with pytest.raises(PasteRefused, match=accepted):
            code_from_paste(paste, redirect_uri=APP_CALLBACK, state="S")


async def test_pasted_login_checks_state_and_pkce(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim()
    token_file = tmp_path / "openframe.json"
    browser = Browser(lambda landed: _with_state(landed, "forged"), lambda landed: landed)
    result = await _login(sim, token_file, browser)

    query = parse_qs(urlsplit(browser.url).query)
    assert query["redirect_uri"] == [APP_CALLBACK]
    assert query["scope"] == ["read write"]
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert urlsplit(browser.landed).netloc == "your-app.com"
    assert len(browser.prompts) == 2 and "Not accepted: its state is not this login's" in browser.prompts[1]
    assert result.refresh_token and result.scope == "read write"
    stored = json.loads(token_file.read_text())
    assert stored["refresh_token"] in sim.tokens["openframe"].refresh_tokens
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    [exchange] = sim.find_requests(path="/v1/oauth/token")
    form = parse_qs(exchange.body.decode())
    assert form["redirect_uri"] == [APP_CALLBACK] and form["code_verifier"]
    async with running_adapter(sim, auth=openframe_oauth(token_file)) as h:
        assert (await _get_alert(h)).id == "alt_0001"


async def test_a_bare_code_is_bound_to_its_login_by_pkce(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim()
    result = await _login(sim, tmp_path / "a.json", Browser(_code_of))
    assert result.refresh_token, "a code pasted alone works for the login that asked for it"

    # A code from someone else's authorization (another PKCE challenge) fails the exchange.
    _, challenge = pkce_pair()
    foreign = {"response_type": "code", "client_id": "openframe-client", "redirect_uri": APP_CALLBACK,
               "state": "theirs", "code_challenge": challenge, "code_challenge_method": "S256"}  # fmt: skip
    code = _code_of(await approve(f"{sim.openframe_url}/v1/oauth/authorize?{urlencode(foreign)}"))

    async def paste(prompt: str) -> str | None:
        return code

    request = _request(sim, tmp_path / "b.json", redirect_uri=APP_CALLBACK)
    with pytest.raises(LoginFailed, match=r"code exchange failed: .*invalid_grant"):
        await run_login(request, announce=lambda url: None, read_pasted=paste, wait_seconds=5)
    assert not (tmp_path / "b.json").exists()


async def test_an_error_redirect_fails_the_login(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim()

    def refused(landed: str) -> str:
        state = parse_qs(urlsplit(landed).query)["state"][0]
        return f"{APP_CALLBACK}?error=access_denied&error_description=user+said+no&state={state}"

    with pytest.raises(LoginFailed, match="refused: access_denied: user said no"):
        await _login(sim, tmp_path / "t.json", Browser(refused))
    with pytest.raises(LoginFailed, match="no redirect address or code was pasted"):
        await _login(sim, tmp_path / "t.json", Browser())


async def test_no_refresh_token_means_relogin_not_failure(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(openframe_refresh_tokens=False)
    token_file = tmp_path / "openframe.json"
    result = await _login(sim, token_file, Browser(lambda landed: landed))
    assert not result.refresh_token and result.access_token_expires_at > 0
    stored = json.loads(token_file.read_text())
    assert stored["refresh_token"] == "" and stored["access_token"]

    async with running_adapter(sim, auth=openframe_oauth(token_file)) as h:
        await _get_alert(h)
        sim.expire_tokens("openframe")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _get_alert(h)
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert error_details(caught.value)["ErrorInfo"].reason == "UPSTREAM_LOGIN_REQUIRED"
        assert "run `python -m adapter login openframe` again" in (caught.value.details() or "")
        assert sim.tokens["openframe"].token_requests == 1, "nothing to refresh with: no token request"

        await _login(sim, token_file, Browser(lambda landed: landed))  # the re-login path
        assert (await _get_alert(h)).id == "alt_0001", "the new login is used without a restart"


def _env(base_url: str, token_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env.update(
        {
            "MESH_UPSTREAMS__OPENFRAME__BASE_URL": base_url,
            "MESH_UPSTREAMS__OPENFRAME__AUTH__TYPE": "oauth2_authorization_code",
            "MESH_UPSTREAMS__OPENFRAME__AUTH__AUTHORIZE_URL": "/v1/oauth/authorize",
            "MESH_UPSTREAMS__OPENFRAME__AUTH__TOKEN_URL": "/v1/oauth/token",
            "MESH_UPSTREAMS__OPENFRAME__AUTH__CLIENT_ID": "openframe-client",
            "MESH_UPSTREAMS__OPENFRAME__AUTH__TOKEN_FILE": str(token_file),
            "MESH_UPSTREAMS__OPENFRAME__AUTH__REDIRECT_URI": APP_CALLBACK,
        }
    )
    return env


@pytest.mark.parametrize("refresh_tokens", [True, False])
async def test_login_cli_with_a_pasted_redirect(
    start_sim: StartSim, tmp_path: Path, refresh_tokens: bool
) -> None:
    sim = await start_sim(openframe_refresh_tokens=refresh_tokens)
    token_file = tmp_path / "secrets" / "openframe.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapter", "login", "openframe", "--no-browser", "--timeout", "20",
        cwd=ROOT, env=_env(sim.openframe_url + "/v1", token_file),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None

    async def line_with(text: str) -> str:
        while True:
            line = (await process.stdout.readline()).decode()  # type: ignore[union-attr]
            assert line, f"the login command ended before printing {text!r}"
            if text in line:
                return line.strip()

    try:
        async with asyncio.timeout(20):
            url = await line_with("http")
            await line_with("Paste the address")
            landed = await approve(url)
            process.stdin.write(_with_state(landed, "forged").encode() + b"\n")
            await line_with("Not accepted: its state is not this login's")
            process.stdin.write(landed.encode() + b"\n")
            await process.stdin.drain()
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = stdout.decode()
    assert process.returncode == 0, stderr.decode()
    assert parse_qs(urlsplit(url).query)["redirect_uri"] == [APP_CALLBACK]
    stored = json.loads(token_file.read_text())
    assert stored["access_token"] not in output + stderr.decode()
    if refresh_tokens:
        assert "the refresh token is stored in" in output
    else:
        assert "granted no refresh token" in output
        assert "run `python -m adapter login openframe`" in output
        assert stored["refresh_token"] == ""
