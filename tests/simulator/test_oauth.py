"""OAuth2: OCTOSPINE client credentials, OpenFrame authorization code + PKCE and refresh."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from simulator import Simulator
from tests.simulator.conftest import StartSim

REDIRECT = "http://127.0.0.1:5999/callback"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _client_credentials(sim: Simulator, secret: str = "octospine-client-secret") -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.octospine_url) as client:
        return await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("octospine-client", secret),
        )


async def test_client_credentials_token_is_accepted(sim: Simulator) -> None:
    issued = await _client_credentials(sim)
    assert issued.status_code == 200
    token = issued.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    assert issued.headers["Cache-Control"] == "no-store"
    async with httpx.AsyncClient(base_url=sim.octospine_url) as client:
        answer = await client.get("/api/health", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert answer.status_code == 200
    assert sim.tokens["octospine"].token_requests == 1
    assert sim.count(route="/oauth/token") == 1
    assert sim.requests[-1].credential == "oauth:octospine-client"


async def test_client_credentials_in_the_form(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.octospine_url) as client:
        issued = await client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "octospine-client",
                "client_secret": "octospine-client-secret",
                "scope": "read",
            },
        )
    assert issued.json()["scope"] == "read"


@pytest.mark.parametrize(
    ("data", "auth", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, ("octospine-client", "wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("someone", "octospine-client-secret"), 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "octospine-client"}, None, 401, "invalid_client"),
        (
            {"grant_type": "password"},
            ("octospine-client", "octospine-client-secret"),
            400,
            "unsupported_grant_type",
        ),
    ],
)
async def test_client_credentials_errors(
    sim: Simulator, data: dict[str, str], auth: tuple[str, str] | None, status: int, error: str
) -> None:
    async with httpx.AsyncClient(base_url=sim.octospine_url) as client:
        response = await client.post("/oauth/token", data=data, auth=auth)
    assert (response.status_code, response.json()["error"]) == (status, error)


async def test_expired_token_is_401_token_expired(sim: Simulator) -> None:
    token = (await _client_credentials(sim)).json()["access_token"]
    sim.expire_tokens("octospine")
    async with httpx.AsyncClient(base_url=sim.octospine_url) as client:
        answer = await client.get("/api/health", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "TOKEN_EXPIRED"


async def test_token_ttl_is_configurable(start_sim: StartSim) -> None:
    sim = await start_sim(token_ttl_s=0.05)
    token = (await _client_credentials(sim)).json()
    assert token["expires_in"] == 1  # whole seconds, rounded up
    await sim.wait_for(lambda: sim.tokens["octospine"].lookup(token["access_token"])[0] == "expired")


async def _authorize(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    query = {"response_type": "code", "client_id": "openframe-client", "redirect_uri": REDIRECT}
    return await client.get("/v1/oauth/authorize", params={**query, **params})


async def test_authorization_code_with_pkce_and_refresh_rotation(sim: Simulator) -> None:
    verifier = secrets.token_urlsafe(48)
    async with httpx.AsyncClient(base_url=sim.openframe_url) as client:
        redirect = await _authorize(
            client, state="xyz", code_challenge=_challenge(verifier), code_challenge_method="S256"
        )
        assert redirect.status_code == 302
        location = urlsplit(redirect.headers["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
        query = parse_qs(location.query)
        assert query["state"] == ["xyz"]
        code = query["code"][0]

        exchange = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "openframe-client",
        }
        wrong = await client.post("/v1/oauth/token", data={**exchange, "code_verifier": "nope" * 12})
        assert wrong.json()["error"] == "invalid_grant"
        tokens = await client.post("/v1/oauth/token", data={**exchange, "code_verifier": verifier})
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        reused = await client.post("/v1/oauth/token", data={**exchange, "code_verifier": verifier})
        assert reused.json()["error"] == "invalid_grant"  # codes are single use

        devices = await client.get("/v1/devices", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert devices.status_code == 200

        refresh = {"grant_type": "refresh_token", "client_id": "openframe-client"}
        rotated = await client.post(
            "/v1/oauth/token", data={**refresh, "refresh_token": body["refresh_token"]}
        )
        assert rotated.status_code == 200
        assert rotated.json()["refresh_token"] != body["refresh_token"]
        old_again = await client.post(
            "/v1/oauth/token", data={**refresh, "refresh_token": body["refresh_token"]}
        )
        assert old_again.json()["error"] == "invalid_grant"


async def test_confidential_client_without_pkce(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.openframe_url) as client:
        code = parse_qs(urlsplit((await _authorize(client)).headers["Location"]).query)["code"][0]
        exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        no_secret = await client.post("/v1/oauth/token", data={**exchange, "client_id": "openframe-client"})
        assert no_secret.status_code == 401
        tokens = await client.post(
            "/v1/oauth/token", data=exchange, auth=("openframe-client", "openframe-client-secret")
        )
        assert tokens.status_code == 200
        assert "refresh_token" in tokens.json()


async def test_authorize_errors(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.openframe_url) as client:
        unknown = await client.get("/v1/oauth/authorize", params={"client_id": "x", "redirect_uri": REDIRECT})
        assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_request")
        bad_type = await _authorize(client, response_type="token", state="s")
        query = parse_qs(urlsplit(bad_type.headers["Location"]).query)
        assert query == {"error": ["unsupported_response_type"], "state": ["s"]}
        bad_method = await _authorize(client, code_challenge="abc", code_challenge_method="S512")
        assert "invalid_request" in bad_method.headers["Location"]


async def test_oauth_token_works_in_x_api_key_profile(start_sim: StartSim) -> None:
    sim = await start_sim(profile="drifted")
    token = (await _client_credentials(sim)).json()["access_token"]
    async with httpx.AsyncClient(base_url=sim.octospine_url) as client:
        answer = await client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
