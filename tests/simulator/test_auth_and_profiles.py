"""Authentication in both styles, vendor error bodies, and the named profiles."""

from __future__ import annotations

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from simulator import PROFILES, Simulator, SimulatorConfig
from simulator.__main__ import parse_args
from tests.simulator.conftest import OF_KEY, OS_KEY, StartSim


async def _get(url: str, path: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": f"Bearer {OF_KEY}"}, 200),
        ({"Authorization": f"bearer {OF_KEY}"}, 200),
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": OF_KEY}, 401),
        ({"X-API-Key": OF_KEY}, 401),  # the drift's header is not the documented one
    ],
)
async def test_bearer_style(sim: Simulator, headers: dict[str, str], status: int) -> None:
    response = await _get(sim.openframe_url, "/v1/devices", headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"] == "unauthorized"
        assert response.headers["X-Request-Id"] == response.json()["request_id"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-API-Key": OS_KEY}, 200),
        ({"x-api-key": OS_KEY}, 200),
        ({"Authorization": f"Bearer {OS_KEY}"}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({}, 401),
    ],
)
async def test_x_api_key_style(start_sim: StartSim, headers: dict[str, str], status: int) -> None:
    sim = await start_sim(auth_style="x-api-key")
    response = await _get(sim.octospine_url, "/api/health", headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["code"] == "AUTHENTICATION_FAILED"


async def test_keys_are_per_vendor(sim: Simulator) -> None:
    wrong_vendor = await _get(sim.octospine_url, "/api/health", {"Authorization": f"Bearer {OF_KEY}"})
    assert wrong_vendor.status_code == 401


async def test_websocket_upgrade_checks_credentials(sim: Simulator) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(sim.openframe_ws_url):
            pass
    assert refused.value.response.status_code == 401
    async with connect(sim.openframe_ws_url, additional_headers={"Authorization": f"Bearer {OF_KEY}"}) as ws:
        assert '"connected"' in str(await ws.recv())
    async with connect(f"{sim.octospine_ws_url}?token={OS_KEY}") as ws:
        assert '"connected"' in str(await ws.recv())


def test_profiles_resolve_with_overrides() -> None:
    assert SimulatorConfig().settings() == PROFILES["documented"]
    drifted = SimulatorConfig(profile="drifted").settings()
    assert (drifted.auth_style, drifted.pagination) == ("x-api-key", "cursor")
    assert (drifted.rate_limit_per_minute, drifted.rate_limit_headers) == (100, True)
    mixed = SimulatorConfig(profile="drifted", pagination="offset", rate_limit_per_minute=0).settings()
    assert (mixed.auth_style, mixed.pagination, mixed.rate_limit_per_minute) == ("x-api-key", "offset", None)
    with pytest.raises(ValueError, match="unknown profile"):
        SimulatorConfig(profile="nope").settings()


async def test_drifted_profile_on_the_wire(start_sim: StartSim) -> None:
    sim = await start_sim(profile="drifted")
    response = await _get(sim.openframe_url, "/v1/alerts", {"X-API-Key": OF_KEY})
    assert response.status_code == 200
    assert set(response.json()["meta"]) == {"next_cursor"}
    assert response.headers["X-RateLimit-Limit-Minute"] == "100"
    assert response.headers["X-RateLimit-Remaining-Minute"] == "99"
    too_big = await _get(sim.openframe_url, "/v1/alerts?limit=101", {"X-API-Key": OF_KEY})
    assert too_big.status_code == 400


async def test_documented_profile_sends_no_rate_limit_headers(sim: Simulator) -> None:
    response = await _get(sim.openframe_url, "/v1/alerts", {"Authorization": f"Bearer {OF_KEY}"})
    assert "X-RateLimit-Limit-Minute" not in response.headers
    assert set(response.json()["meta"]) == {"page", "per_page", "total"}


async def test_profile_per_vendor(start_sim: StartSim) -> None:
    sim = await start_sim(octospine_profile="drifted")
    assert sim.settings["openframe"] == PROFILES["documented"]
    assert (
        await _get(sim.openframe_url, "/v1/devices", {"Authorization": f"Bearer {OF_KEY}"})
    ).status_code == 200
    octo = await _get(sim.octospine_url, "/api/tasks", {"X-API-Key": OS_KEY})
    assert set(octo.json()["meta"]) == {"next_cursor"}
    assert octo.headers["X-RateLimit-Limit-Minute"] == "100"


async def test_tenant_keys_are_accepted_and_counted_apart(start_sim: StartSim) -> None:
    sim = await start_sim(openframe_tenant_api_keys=(("team-a", "key-a"),), rate_limit_per_minute=2)
    answers = [
        (await _get(sim.openframe_url, "/v1/devices", {"Authorization": f"Bearer {key}"})).status_code
        for key in ("key-a", "key-a", "key-a", OF_KEY, OF_KEY)
    ]
    assert answers == [200, 200, 429, 200, 200]  # team A's quota is its own
    assert [r.credential for r in sim.requests] == ["api_key:team-a"] * 3 + ["api_key"] * 2
    octospine = await _get(sim.octospine_url, "/api/health", {"Authorization": "Bearer key-a"})
    assert octospine.status_code == 401  # a tenant key of one vendor only


def test_tenant_keys_from_the_command_line_and_environment() -> None:
    config, _ = parse_args(
        ["--openframe-tenant-api-key", "team-b=kb"], {"SIM_OPENFRAME_TENANT_API_KEYS": "team-a=ka;team-c=kc"}
    )
    assert config.openframe_tenant_api_keys == (("team-a", "ka"), ("team-c", "kc"), ("team-b", "kb"))
    assert config.api_keys("openframe") == {
        "api_key": config.openframe_api_key,
        "api_key:team-a": "ka",
        "api_key:team-c": "kc",
        "api_key:team-b": "kb",
    }
    with pytest.raises(SystemExit):
        parse_args(["--octospine-tenant-api-key", "no-equals-sign"], {})
