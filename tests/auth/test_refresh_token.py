"""OAuth2 authorization code + rotating refresh tokens (OpenFrame): the adapter
refreshes access tokens, stores each rotated refresh token owner-only, renews
once under concurrency, and asks for a new login when the grant is gone."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import grpc
import pytest
from openframe.v1 import alerts_pb2, alerts_pb2_grpc

from simulator import Simulator

from ..resilience.harness import StartSim, error_details, running_adapter
from .login_helpers import login, openframe_oauth

pytestmark = pytest.mark.usefixtures("profile")

GET_ALERT = "/v1/alerts/{alert_id}"


async def _get(h) -> alerts_pb2.Alert:  # type: ignore[no-untyped-def]
    return await alerts_pb2_grpc.AlertServiceStub(h.channel).GetAlert(
        alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5
    )


def _stored(path: Path) -> dict[str, str]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _requests(sim: Simulator) -> int:
    return sim.tokens["openframe"].token_requests


async def test_login_then_refresh_rotates_and_persists(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim()
    token_file = tmp_path / "tokens" / "openframe.json"
    await login(sim, token_file)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    first = _stored(token_file)
    assert _requests(sim) == 1

    async with running_adapter(sim, auth=openframe_oauth(token_file)) as h:
        await _get(h)  # the access token stored by the login is still good: no refresh
        assert _requests(sim) == 1
        sim.expire_tokens("openframe")
        await _get(h)
        assert [r.status for r in sim.find_requests(route=GET_ALERT)] == [200, 401, 200]
    assert _requests(sim) == 2
    second = _stored(token_file)
    assert second["refresh_token"] != first["refresh_token"]
    assert sim.tokens["openframe"].refresh_tokens[first["refresh_token"]].revoked
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    served = [r for r in sim.find_requests(route=GET_ALERT) if r.status == 200]
    assert {r.credential for r in served} == {"oauth:openframe-client"}


async def test_concurrent_callers_share_one_refresh(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim()
    token_file = tmp_path / "openframe.json"
    await login(sim, token_file)
    sim.expire_tokens("openframe")
    async with running_adapter(sim, auth=openframe_oauth(token_file)) as h:
        results = await asyncio.gather(*(_get(h) for _ in range(30)))
    assert len(results) == 30
    assert _requests(sim) == 2  # the login, then one refresh


async def test_a_refused_refresh_token_asks_for_a_new_login(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim()
    token_file = tmp_path / "openframe.json"
    await login(sim, token_file)
    async with running_adapter(sim, auth=openframe_oauth(token_file)) as h:
        await _get(h)
        # The vendor revokes the grant (e.g. the user removed the app), and the access token expires.
        sim.tokens["openframe"].refresh_tokens[_stored(token_file)["refresh_token"]].revoked = True
        sim.expire_tokens("openframe")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get(h)
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert error_details(info.value)["ErrorInfo"].reason == "UPSTREAM_LOGIN_REQUIRED"
        assert "python -m adapter login openframe" in info.value.details()

        # Logging in again fixes it without restarting the adapter.
        await login(sim, token_file)
        sim.expire_tokens("openframe")
        await _get(h)


async def test_a_token_file_readable_by_others_is_refused(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim()
    token_file = tmp_path / "openframe.json"
    await login(sim, token_file)
    token_file.chmod(0o644)
    sim.expire_tokens("openframe")
    async with running_adapter(sim, auth=openframe_oauth(token_file)) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get(h)
    assert "accessible to others" in info.value.details()
    assert _requests(sim) == 1
