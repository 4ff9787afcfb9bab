"""``python -m adapter login openframe`` end to end against the simulator: a real
process prints the URL, a scripted browser approves, the loopback callback
checks ``state``, the code is exchanged with its PKCE verifier, and the refresh
token lands in an owner-only file."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from adapter.cli import main

from ..resilience.harness import StartSim
from .login_helpers import browse

pytestmark = pytest.mark.usefixtures("profile")

ROOT = Path(__file__).resolve().parents[2]


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
        }
    )
    return env


async def test_login_cli_end_to_end(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim()
    token_file = tmp_path / "secrets" / "openframe.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapter", "login", "openframe", "--no-browser", "--timeout", "20",
        cwd=ROOT, env=_env(sim.openframe_url, token_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = ""
        async with asyncio.timeout(20):
            while not url.startswith("http"):
                line = (await process.stdout.readline()).decode()
                assert line, "the login command ended without printing a URL"
                url = line.strip()
        query = parse_qs(urlsplit(url).query)
        assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
        redirect_uri = query["redirect_uri"][0]
        assert urlsplit(redirect_uri).hostname == "127.0.0.1"

        # A forged callback (wrong state) is refused, and the login keeps waiting.
        async with httpx.AsyncClient(trust_env=False) as client:
            forged = await client.get(f"{redirect_uri}?{urlencode({'code': 'x', 'state': 'forged'})}")
        assert forged.status_code == 400

        page = await browse(url)
        assert page.status_code == 200 and "Logged in" in page.text
        async with asyncio.timeout(20):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    stored = json.loads(token_file.read_text())
    assert stored["refresh_token"] in sim.tokens["openframe"].refresh_tokens
    output = stdout.decode() + stderr.decode()
    assert stored["refresh_token"] not in output and stored["access_token"] not in output
    assert str(token_file) in stdout.decode()
    [exchange] = sim.find_requests(path="/v1/oauth/token")
    form = parse_qs(exchange.body.decode())
    assert form["grant_type"] == ["authorization_code"] and form["code_verifier"]


def test_login_needs_an_authorization_code_upstream(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in [k for k in os.environ if k.startswith("MESH_")]:
        monkeypatch.delenv(key)
    # load_settings() copies this into os.environ; keep that from outliving the test.
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("MESH_UPSTREAMS__OCTOSPINE__BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY", "k")
    assert main(["login", "octospine"]) == 2
    assert "oauth2_authorization_code" in capsys.readouterr().err
    assert main(["login", "nope"]) == 2
