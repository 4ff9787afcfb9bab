"""A scripted browser for the OpenFrame login: follows the authorization URL to the
loopback callback, as a user clicking "approve" would."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from adapter.auth.from_settings import login_request_from_settings
from adapter.auth.login import LoginResult, run_login
from adapter.config.settings import UpstreamSettings
from simulator import Simulator
from tests.conftest import adapter_settings


def openframe_oauth(token_file: Path, **overrides: Any) -> dict[str, dict[str, Any]]:
    auth = {
        "type": "oauth2_authorization_code",
        "authorize_url": "/v1/oauth/authorize",
        "token_url": "/v1/oauth/token",
        "client_id": "openframe-client",
        "token_file": str(token_file),
    }
    return {"openframe": {**auth, **overrides}}


@dataclass(frozen=True)
class Page:
    status_code: int
    text: str


async def browse(url: str) -> Page:
    """GET ``url`` following redirects. aiohttp, not httpx: httpx logs every URL it
    fetches, and the callback URL carries the authorization code, which the secret
    hygiene test must not find in the logs (it is the browser's, not the adapter's)."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return Page(response.status, await response.text())


async def login(sim: Simulator, token_file: Path) -> LoginResult:
    base = adapter_settings(sim).upstreams["openframe"].model_dump()
    base["auth"] = openframe_oauth(token_file)["openframe"]
    settings = UpstreamSettings.model_validate(base)
    pages: list[asyncio.Task[Page]] = []

    def announce(url: str) -> None:
        pages.append(asyncio.get_running_loop().create_task(browse(url)))

    result = await run_login(
        login_request_from_settings("openframe", settings), announce=announce, wait_seconds=5
    )
    page = await pages[0]
    assert page.status_code == 200 and "Logged in" in page.text
    return result
