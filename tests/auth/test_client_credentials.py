"""OAuth2 client credentials against the simulator's OCTOSPINE token endpoint:
one token request under concurrency, renewal before expiry, one transparent
renewal on a 401, and token endpoint failures as statuses."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from octospine.v1 import system_pb2, system_pb2_grpc

from adapter.auth import ClientCredentials, renewing
from adapter.auth.renewing import BearerToken
from simulator import Fault, Simulator

from ..resilience.harness import StartSim, error_details, running_adapter

pytestmark = pytest.mark.usefixtures("profile")

C = grpc.StatusCode
HEALTH = "/api/health"


def oauth(**overrides: Any) -> dict[str, dict[str, Any]]:
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": "/oauth/token",
        "client_id": "octospine-client",
        "client_secret": "octospine-client-secret",
    }
    return {"octospine": {**auth, **overrides}}


async def _health(h) -> system_pb2.Health:  # type: ignore[no-untyped-def]
    return await system_pb2_grpc.SystemServiceStub(h.channel).GetHealth(
        system_pb2.GetHealthRequest(), timeout=5
    )


async def _until_due_for_renewal(h, sim: Simulator) -> tuple[ClientCredentials, BearerToken]:  # type: ignore[no-untyped-def]
    """Waits until OCTOSPINE's token is due for its early renewal; returns it."""
    creds = h.credentials["octospine"]
    assert isinstance(creds, ClientCredentials)
    token = creds._token
    assert token is not None and token.renew_at is not None
    await sim.wait_for(lambda: creds._stale(token), timeout_s=5)
    return creds, token


def _token_requests(sim: Simulator) -> int:
    return sim.tokens["octospine"].token_requests


async def test_concurrent_calls_make_one_token_request(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim, auth=oauth()) as h:
        results = await asyncio.gather(*(_health(h) for _ in range(50)))
    assert len(results) == 50
    assert _token_requests(sim) == 1
    assert {r.credential for r in sim.find_requests(route=HEALTH)} == {"oauth:octospine-client"}
    assert sim.count(route=HEALTH) == 50


async def test_stale_token_401_recovers_transparently(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim, auth=oauth()) as h:
        await _health(h)
        sim.expire_tokens("octospine")
        await _health(h)
        assert [r.status for r in sim.find_requests(route=HEALTH)] == [200, 401, 200]
        assert _token_requests(sim) == 2
        # Many callers holding the stale token at once: still one renewal.
        sim.expire_tokens("octospine")
        results = await asyncio.gather(*(_health(h) for _ in range(30)))
    assert len(results) == 30
    assert _token_requests(sim) == 3


async def test_token_is_renewed_before_it_expires(start_sim: StartSim) -> None:
    sim = await start_sim(token_ttl_s=1.0)  # expires_in=1: renewed half-way, at 0.5 s
    async with running_adapter(sim, auth=oauth()) as h:
        await _health(h)
        await _until_due_for_renewal(h, sim)
        await _health(h)
    assert _token_requests(sim) == 2
    assert all(r.status == 200 for r in sim.find_requests(route=HEALTH))  # never sent an expired token


async def test_the_headers_at_hand_are_the_awaited_ones_and_none_once_renewal_is_due(
    start_sim: StartSim,
) -> None:
    """The client takes ready_headers() when it gives some and awaits auth_headers()
    only when it gives None: they must agree, and None must come when a renewal is due."""
    sim = await start_sim(token_ttl_s=1.0)
    async with running_adapter(sim, auth=oauth()) as h:
        creds = h.credentials["octospine"]
        assert creds.ready_headers() is None  # no token yet
        await _health(h)
        ready = creds.ready_headers()
        assert ready is not None and ready == await creds.auth_headers()
        creds, _ = await _until_due_for_renewal(h, sim)
        assert creds.ready_headers() is None
        await _health(h)
        renewed = creds.ready_headers()
        assert renewed is not None and renewed != ready
        assert renewed == await creds.auth_headers()
    assert _token_requests(sim) == 2


async def test_a_failed_early_renewal_leaves_the_token_in_use_until_it_expires(
    start_sim: StartSim, caplog: pytest.LogCaptureFixture
) -> None:
    """The token is renewed half-way through its life; if the endpoint is down then,
    calls go on with the token they have (it works for the other half) instead of
    failing UNAVAILABLE, and once it has expired they fail as before."""
    sim = await start_sim(token_ttl_s=4.0)  # renewed after 2 s, taken until 4 s
    async with running_adapter(sim, auth=oauth(), resilience={"retry": {"max_attempts": 1}}) as h:
        await _health(h)
        creds, token = await _until_due_for_renewal(h, sim)
        assert token.expires_at is not None
        sim.faults.add(Fault(vendor="octospine", route="/oauth/token", status=503))
        await asyncio.gather(*(_health(h) for _ in range(5)))  # share one renewal, which fails
        for _ in range(3):
            await _health(h)  # the failure is held: the token still serves
        assert sim.count(route="/oauth/token") == 2  # the first, and one failed renewal
        said = [r.getMessage() for r in caplog.records if r.name == "adapter.auth.renewing"]
        assert len(said) == 1 and "renewing the token failed" in said[0], said
        await sim.wait_for(lambda: creds._clock() >= token.expires_at, timeout_s=5)  # type: ignore[operator]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _health(h)
        assert error_details(info.value)["ErrorInfo"].reason == "UPSTREAM_TOKEN_ENDPOINT_UNAVAILABLE"
    assert [r.status for r in sim.find_requests(route=HEALTH)] == [200] * 9  # never an expired token


async def test_wrong_client_secret_is_internal_and_not_retried(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim, auth=oauth(client_secret="wrong")) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _health(h)
    assert info.value.code() == C.INTERNAL
    details = error_details(info.value)
    assert details["ErrorInfo"].reason == "UPSTREAM_TOKEN_REJECTED"
    assert "invalid_client" in info.value.details()
    assert _token_requests(sim) == 1
    assert sim.count(route=HEALTH) == 0


async def test_a_refused_secret_is_not_asked_again_until_the_hold_ends(
    start_sim: StartSim, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call with a wrong secret used to send its own token request (and log a
    WARNING): a vendor's OAuth endpoint saw as many requests as the adapter had calls."""
    monkeypatch.setattr(renewing, "HOLD_REFUSED", 1.0)
    sim = await start_sim()
    async with running_adapter(sim, auth=oauth(client_secret="wrong")) as h:
        for _ in range(6):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await _health(h)
            assert info.value.code() == C.INTERNAL
            assert error_details(info.value)["ErrorInfo"].reason == "UPSTREAM_TOKEN_REJECTED"
            assert "invalid_client" in info.value.details()
        assert _token_requests(sim) == 1
        refusals = [r for r in caplog.records if r.name == "adapter.auth.token_endpoint"]
        assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING
        await asyncio.sleep(1.1)  # the hold is over: asked again, once
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError):
                await _health(h)
        assert _token_requests(sim) == 2
    assert sim.count(route=HEALTH) == 0


async def test_a_token_endpoint_that_asks_to_wait_is_not_asked_before(start_sim: StartSim) -> None:
    sim = await start_sim()
    sim.faults.add(Fault(vendor="octospine", route="/oauth/token", status=503, retry_after=2))
    async with running_adapter(sim, auth=oauth(), resilience={"retry": {"max_attempts": 1}}) as h:
        delays = []
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await _health(h)
            assert info.value.code() == C.UNAVAILABLE
            details = error_details(info.value)
            assert details["ErrorInfo"].reason == "UPSTREAM_TOKEN_ENDPOINT_UNAVAILABLE"
            delays.append(details["RetryInfo"].retry_delay.ToTimedelta().total_seconds())
        assert sim.count(route="/oauth/token") == 1
        assert delays[0] == 2.0 and 0 < delays[2] <= delays[1] < 2.0  # what is left of the wait
        sim.faults.clear()
        await asyncio.sleep(delays[2] + 0.05)
        await _health(h)  # the wait is over: one more token request, and the call goes through
    assert sim.count(route="/oauth/token") == 2
    assert sim.count(route=HEALTH) == 1


async def test_unreachable_token_endpoint_is_unavailable(start_sim: StartSim) -> None:
    sim = await start_sim()
    auth = oauth(token_url="http://127.0.0.1:9/oauth/token", token_timeout_seconds=1)
    async with running_adapter(sim, auth=auth, resilience={"retry": {"max_attempts": 2}}) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _health(h)
    assert info.value.code() == C.UNAVAILABLE
    assert error_details(info.value)["ErrorInfo"].reason == "UPSTREAM_TOKEN_ENDPOINT_UNAVAILABLE"
    assert sim.count(route=HEALTH) == 0
